package goplugin

// A plugin process: its launch (directly, or through the enclave
// launcher), handshake, definition and Init, the batch stream it opens,
// and its end.

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends/goplugin/shm"
	"github.com/bulkhead-sec/bulkhead/backends/goplugin/wire"
	"github.com/bulkhead-sec/bulkhead/backends/pluginlog"
	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	plugin "github.com/hashicorp/go-plugin"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// stopGrace bounds each of the two steps of a plugin's end: the graceful
// one, then the one after its process was killed.
const stopGrace = 3 * time.Second

// end stops the process. With grace, go-plugin's Kill asks the plugin to
// shut down (its controller's Shutdown, which only returns once the
// process is gone) and waits up to 2 s for it to exit; a plugin that does
// not answer, or is not gone within stopGrace or by ctx, is killed, and
// go-plugin's Kill then ends. Without grace it is killed first. Should
// go-plugin still not be done stopGrace after the kill (a process of the
// plugin's outside its enclave keeps its pipes open), it is left to finish
// on its own and end says so: a stop never blocks for ever.
func (p *process) end(ctx context.Context, grace bool) error {
	defer p.closeRing()
	close(p.quit)
	if p.cancel != nil {
		p.cancel()
	}
	if !grace {
		p.runner.Kill(ctx)
	}
	done := make(chan struct{})
	go func() {
		p.client.Kill()
		p.runner.close()
		close(done)
	}()
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	p.runner.Kill(ctx)
	t.Reset(stopGrace)
	select {
	case <-done:
		return nil
	case <-t.C:
	}
	return fmt.Errorf("plugin process %d: killed, but its output pipes are still open %v later (a process it started holds them); left behind", p.pid, stopGrace)
}

// process is one running plugin.
type process struct {
	client  *plugin.Client
	cmd     *exec.Cmd
	rpc     wire.DetectorClient
	cc      grpc.ClientConnInterface
	stream  wire.Detector_StreamClient
	runner  *pluginRunner
	cancel  context.CancelFunc
	results chan *wire.InResult
	errs    chan error
	quit    chan struct{} // closed by kill: read stops
	pid     int
	ring    *shm.Producer // the shm transport's ring (nil: batches on the stream)
	// answers counts the results read from this process (shm: a batch
	// consumed without one is settled once every answer the plugin says
	// it sent has arrived).
	answers uint64
}

// start launches the binary, shakes hands, describes and initialises it,
// and opens the batch stream.
func (b *Backend) start() (*process, detection.Definition, error) {
	var def detection.Definition
	cfg := &plugin.ClientConfig{
		HandshakeConfig:  wire.Handshake(),
		Plugins:          plugin.PluginSet{wire.PluginName: &clientPlugin{}},
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		StartTimeout:     b.opts.StartTimeout,
		GRPCDialOptions:  wire.DialOptions(b.opts.Limits.ResultBytes),
		Stderr:           b.plog.stderr(),
		AutoMTLS:         b.opts.MTLS,
	}
	var cmd *exec.Cmd
	if b.opts.Enclave != nil {
		var err error
		if cmd, err = b.opts.Enclave.Command(b.opts.Launcher, b.opts.Path, b.opts.SHA256, b.opts.Transport == TransportShm); err != nil {
			return nil, def, err
		}
		cfg.SkipHostEnv = true
	} else {
		cmd = exec.Command(b.opts.Path)
		// If the monitor dies, the kernel kills its plugins (and the SDK's
		// own watch on its parent catches the rest): no orphans.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	ring, err := b.newRing(cmd)
	if err != nil {
		return nil, def, err
	}
	// The runner starts cmd and checks the address the plugin names.
	r := newRunner(cmd, b.opts.Enclave, b.opts.SHA256)
	cfg.RunnerFunc = r.run
	// go-plugin names the reader of the plugin's stderr after the binary
	// it starts; newHCLog turns that one off (see zapHCLog).
	cfg.Logger = newHCLog(b.log, cmd.Path, b.opts.Path)
	client := plugin.NewClient(cfg)
	p := &process{client: client, cmd: cmd, runner: r, results: make(chan *wire.InResult, 1), errs: make(chan error, 1), quit: make(chan struct{}), ring: ring}
	fail := func(what string, err error) (*process, detection.Definition, error) {
		p.end(context.Background(), false)
		if status.Code(err) == codes.ResourceExhausted {
			err = violation(err) // an answer over its bound
		}
		return nil, def, &startError{msg: pluginlog.SafeText(fmt.Sprintf("plugin %s: %s: %v", b.opts.Path, what, err)), err: err}
	}
	rpcClient, err := client.Client()
	if refused := r.refusal(); refused != nil {
		return fail("refused, killed", refused)
	}
	if err != nil {
		return fail(fmt.Sprintf("not a bulkhead detector plugin, or one built for another protocol version (this monitor speaks version %d)", wire.ProtocolVersion), handshakeError(err))
	}
	raw, err := rpcClient.Dispense(wire.PluginName)
	if err != nil {
		return fail("dispense", err)
	}
	conn := raw.(*rpcConn)
	p.rpc, p.cc = conn.DetectorClient, conn.cc
	p.pid = cmd.Process.Pid
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.StartTimeout)
	defer cancel()
	// The definition is asked before Init, and again after it: a
	// configured detector may narrow its filter.
	// what names the step that failed.
	describe := func(definition string) (what string, err error) {
		pd, err := p.rpc.Describe(ctx, &wire.DescribeRequest{})
		if err != nil {
			return "describe", err
		}
		def = wire.DefinitionFromProto(pd)
		if err := def.Validate(); err != nil {
			if errors.Is(err, detection.ErrFilterBounds) {
				b.answers.Violations.Add(1)
			}
			return definition, err
		}
		return definition, nil
	}
	if what, err := describe("definition"); err != nil {
		return fail(what, err)
	}
	if _, err := p.rpc.Init(ctx, &wire.InitRequest{ConfigJson: b.opts.Config}); err != nil {
		err = detectorError(err)
		if b.opts.Enclave != nil && strings.Contains(err.Error(), "permission denied") {
			err = fmt.Errorf("%w (the plugin runs in an enclave as uid %d: list the path under the detector's enclave: read:, and make it readable by that uid)",
				err, b.opts.Enclave.UID())
		}
		return fail("init", err)
	}
	if what, err := describe("definition after init"); err != nil {
		return fail(what, err)
	}
	if !b.opts.Unary {
		sctx, scancel := context.WithCancel(context.Background())
		p.cancel = scancel
		if p.stream, err = p.rpc.Stream(sctx); err != nil {
			return fail("open stream", err)
		}
		go p.read()
	}
	b.pid.Store(int64(p.pid))
	return p, def, nil
}

// startError is why a plugin did not start. Its message can quote the
// plugin (its handshake line, its Init error): it is bounded and escaped.
type startError struct {
	msg string
	err error
}

func (e *startError) Error() string { return e.msg }
func (e *startError) Unwrap() error { return e.err }

// handshakeError is the first line of go-plugin's handshake error: what
// the plugin printed instead of a handshake (its own bytes, escaped by
// fail) without go-plugin's page of generic advice.
func handshakeError(err error) error {
	line, _, _ := strings.Cut(err.Error(), "\n")
	line = strings.TrimSuffix(strings.TrimSpace(line), ":")
	if line == "Unrecognized remote plugin message" {
		line = "it printed no handshake line on its stdout"
	}
	return errors.New(line)
}

// detectorError is the detector's own message in a gRPC error.
func detectorError(err error) error {
	if s, ok := status.FromError(err); ok && s.Code() == codes.Unknown {
		return errors.New(s.Message())
	}
	return err
}

// read forwards the plugin's results, unparsed; the first error, or kill,
// ends it. A result over the receive limit is a violation.
func (p *process) read() {
	for {
		res := &wire.InResult{}
		err := p.stream.RecvMsg(res)
		if status.Code(err) == codes.ResourceExhausted {
			err = violation(err)
		}
		if err != nil {
			select {
			case p.errs <- err:
			case <-p.quit:
			}
			return
		}
		select {
		case p.results <- res:
		case <-p.quit:
			return
		}
	}
}

// kill ends the process at once (a hung plugin gets no grace) and reaps
// it, within a bound (see end). It says whether go-plugin is done with it
// (and cmd.ProcessState may be read).
func (p *process) kill(log *zap.Logger) bool {
	if err := p.end(context.Background(), false); err != nil {
		log.Error("a killed plugin process was not reaped", safeError(err))
		return false
	}
	return true
}

// clientPlugin is the monitor's side of go-plugin's plugin.GRPCPlugin.
type clientPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

func (clientPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("the monitor does not serve detectors")
}

func (clientPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &rpcConn{DetectorClient: wire.NewDetectorClient(c), cc: c}, nil
}

// rpcConn is the detector's client and the connection under it (for
// wire.ProcessRaw).
type rpcConn struct {
	wire.DetectorClient
	cc grpc.ClientConnInterface
}
