//go:build !wasip1

package sdk

import (
	"context"
	"errors"
	"io"
	"os"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends/goplugin/wire"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/internal/server"
	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
)

// Serve runs d as a bulkhead plugin: call it from main and nothing else.
// The monitor starts the binary, and Serve answers it until the monitor
// stops it (or dies: the plugin then exits too). Logs written through the
// logger given to Init reach the monitor's log, tagged with the detector.
//
// Set BULKHEAD_PLUGIN_CPUPROFILE=FILE in the monitor's environment to write
// a CPU profile of the plugin (go tool pprof) when it stops.
func Serve(d Detector) {
	log := pluginLogger(os.Stderr)
	go exitWithParent(os.Getppid())
	if path := os.Getenv("BULKHEAD_PLUGIN_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	srv := server.New(d, log)
	if v := os.Getenv(wire.ShmEnv); v != "" {
		// Batches come through the monitor's shared-memory ring.
		ring, err := server.OpenRing(v)
		if err != nil {
			log.Error("cannot open the monitor's shared-memory ring", zap.Error(err))
			os.Exit(1)
		}
		srv.UseRing(ring)
	}
	// go-plugin points os.Stdout and os.Stderr at pipes that only its stdio
	// stream drains, and the monitor refuses that stream: a detector that
	// printed 64 KiB would block for ever. They are given back at the first
	// call (stdout to the handshake pipe, which the monitor reads and
	// drops; stderr to the monitor's rate-limited log).
	stdout, stderr := os.Stdout, os.Stderr
	var restore sync.Once
	giveBack := func() { restore.Do(func() { os.Stdout, os.Stderr = stdout, stderr }) }
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: wire.Handshake(),
		Plugins:         plugin.PluginSet{wire.PluginName: &grpcPlugin{impl: srv}},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			opts = append(opts, grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				giveBack()
				return h(ctx, req)
			}), grpc.ChainStreamInterceptor(func(impl any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
				giveBack()
				return h(impl, ss)
			}))
			return grpc.NewServer(append(opts, wire.ServerOptions()...)...)
		},
		Logger: hclog.New(&hclog.LoggerOptions{Output: os.Stderr, JSONFormat: true, Level: hclog.Warn}),
	})
}

// pluginLogger writes JSON lines with the keys go-plugin reads from a
// plugin's stderr (@level, @message, @timestamp, the last in exactly the
// layout go-plugin parses): the monitor re-logs them at their level.
func pluginLogger(w io.Writer) *zap.Logger {
	cfg := zapcore.EncoderConfig{
		MessageKey: "@message", LevelKey: "@level", TimeKey: "@timestamp", NameKey: "@module",
		EncodeLevel: zapcore.LowercaseLevelEncoder, EncodeTime: zapcore.TimeEncoderOfLayout("2006-01-02T15:04:05.000000Z07:00"),
		EncodeDuration: zapcore.StringDurationEncoder, LineEnding: zapcore.DefaultLineEnding,
	}
	return zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(cfg), zapcore.Lock(zapcore.AddSync(w)), zapcore.DebugLevel))
}

// exitWithParent ends the plugin if the monitor goes away without stopping
// it (killed with SIGKILL, say): a plugin never outlives its monitor.
func exitWithParent(ppid int) {
	for range time.Tick(250 * time.Millisecond) {
		if os.Getppid() != ppid {
			os.Exit(3)
		}
	}
}

// grpcPlugin is the plugin side of go-plugin's plugin.GRPCPlugin.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl *server.Server
}

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	wire.RegisterDetectorServer(s, p.impl)
	return nil
}

func (p *grpcPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("the detector plugin has no client side")
}
