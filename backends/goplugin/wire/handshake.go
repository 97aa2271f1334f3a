package wire

import (
	"context"
	"strings"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ProtocolVersion changes whenever the service or the codec changes in a
// way an older peer cannot follow. 3: flat layout 2 (the file, namespace,
// signal, socket and sys kinds): an older plugin is refused at its start,
// not on every batch.
const ProtocolVersion = 3

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

// MaxStreamBatch is the largest encoded batch the gRPC stream carries (the
// message limit, less the Batch message's own fields).
const MaxStreamBatch = maxMessage - 64

// ServerOptions are the plugin side's gRPC server options.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.InitialWindowSize(windowSize), grpc.InitialConnWindowSize(windowSize),
		grpc.WriteBufferSize(bufferSize), grpc.ReadBufferSize(bufferSize),
		grpc.MaxRecvMsgSize(maxMessage), grpc.MaxSendMsgSize(maxMessage),
		grpc.ForceServerCodecV2(Codec()),
	}
}

// ControlBytes bounds every message the monitor receives from a plugin
// other than a batch's result: a definition, Init's and Close's answers,
// go-plugin's health check. An honest detector's definition is a few KiB.
const ControlBytes = 1 << 20

// maxHeaderList bounds the headers and trailers of a plugin's answers,
// where gRPC carries its status message (a detector's error text): gRPC's
// own default is 16 MiB.
const maxHeaderList = 64 << 10

// DialOptions are the monitor side's gRPC dial options. maxRecv bounds a
// batch's result from the plugin (Limits.ResultBytes); every other
// message is bounded by ControlBytes: gRPC refuses a bigger one from its
// length prefix, before reading it. The streams go-plugin opens on its own
// (its broker and its stdio forwarding), which a detector has no use for
// and a hostile plugin can flood, are refused at once (see
// refuseGoPluginStreams).
func DialOptions(maxRecv int) []grpc.DialOption {
	if maxRecv <= 0 {
		maxRecv = DefaultLimits().ResultBytes
	}
	return []grpc.DialOption{
		grpc.WithInitialWindowSize(windowSize), grpc.WithInitialConnWindowSize(windowSize),
		grpc.WithWriteBufferSize(bufferSize), grpc.WithReadBufferSize(bufferSize),
		grpc.WithMaxHeaderListSize(maxHeaderList),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(ControlBytes), grpc.MaxCallSendMsgSize(maxMessage),
			grpc.ForceCodecV2(Codec())),
		grpc.WithChainStreamInterceptor(refuseGoPluginStreams, resultSize(maxRecv)),
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			if method == Detector_Process_FullMethodName {
				opts = append(opts, grpc.MaxCallRecvMsgSize(maxRecv))
			}
			return invoker(ctx, method, req, reply, cc, opts...)
		}),
	}
}

// ErrRefusedStream is why the monitor refuses go-plugin's broker and stdio
// streams. Unimplemented is the code go-plugin's stdio client takes for
// "the plugin has no stdio service" and carries on without it.
var ErrRefusedStream = status.Error(codes.Unimplemented, "bulkhead: go-plugin's broker and stdio streams are not used")

// refuseGoPluginStreams fails go-plugin's broker stream (every message a
// plugin sends on it costs the monitor a map entry and a goroutine for
// 5 s) and its stdio stream (read and thrown away) before they are
// opened: go-plugin's goroutines for them just end.
func refuseGoPluginStreams(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if strings.HasPrefix(method, "/plugin.GRPCBroker/") || strings.HasPrefix(method, "/plugin.GRPCStdio/") {
		return nil, ErrRefusedStream
	}
	return streamer(ctx, desc, cc, method, opts...)
}

// resultSize lets the batch stream's results be up to maxRecv.
func resultSize(maxRecv int) grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if method == Detector_Stream_FullMethodName {
			opts = append(opts, grpc.MaxCallRecvMsgSize(maxRecv))
		}
		return streamer(ctx, desc, cc, method, opts...)
	}
}
