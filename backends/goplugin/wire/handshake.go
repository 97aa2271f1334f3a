package wire

import (
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// ProtocolVersion changes whenever the service or the codec changes in a
// way an older peer cannot follow.
const ProtocolVersion = 2

// PluginName is the one plugin a detector binary serves.
const PluginName = "detector"

// Handshake is what the monitor and a plugin must agree on before talking.
// The cookie only stops a plugin binary from being run by hand by mistake;
// it is not a security measure.
func Handshake() plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		ProtocolVersion:  ProtocolVersion,
		MagicCookieKey:   "BULKHEAD_DETECTOR_PLUGIN",
		MagicCookieValue: "9b1f5f2e-bulkhead-detector",
	}
}

// Batches are large messages (hundreds of KiB) on a local socket: HTTP/2's
// default 64 KiB windows and small buffers would move each one in many
// flow-controlled round trips. Both sides use these.
const (
	windowSize = 16 << 20
	bufferSize = 1 << 20
	maxMessage = 64 << 20
)

// ServerOptions are the plugin side's gRPC server options.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.InitialWindowSize(windowSize), grpc.InitialConnWindowSize(windowSize),
		grpc.WriteBufferSize(bufferSize), grpc.ReadBufferSize(bufferSize),
		grpc.MaxRecvMsgSize(maxMessage), grpc.MaxSendMsgSize(maxMessage),
		grpc.ForceServerCodecV2(Codec()),
	}
}

// DialOptions are the monitor side's gRPC dial options. maxRecv bounds
// every message the monitor accepts from the plugin (Limits.ResultBytes):
// gRPC refuses a bigger one from its length prefix, before reading it.
func DialOptions(maxRecv int) []grpc.DialOption {
	if maxRecv <= 0 {
		maxRecv = DefaultLimits().ResultBytes
	}
	return []grpc.DialOption{
		grpc.WithInitialWindowSize(windowSize), grpc.WithInitialConnWindowSize(windowSize),
		grpc.WithWriteBufferSize(bufferSize), grpc.WithReadBufferSize(bufferSize),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecv), grpc.MaxCallSendMsgSize(maxMessage),
			grpc.ForceCodecV2(Codec())),
	}
}
