package wasm

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends"
	"github.com/bulkhead-sec/bulkhead/backends/goplugin/wire"
	"github.com/bulkhead-sec/bulkhead/backends/pluginlog"
	"github.com/bulkhead-sec/bulkhead/backends/restart"
	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

// ABI is the version of the module's exports this backend speaks
// (plugins/sdk/wasm.ABI).
const ABI = 1

// Options configure one module.
type Options struct {
	Path   string           // the .wasm module
	Config detection.Config // handed to the detector's Init
	// MemoryPages caps the module's linear memory, in 64 KiB pages (0:
	// DefaultMemoryPages). The Go runtime of a module that reaches it
	// dies of "out of memory": a crash like any other.
	MemoryPages uint32
	// BatchDeadline: a batch not answered by then ends the instance (a
	// hang); the batch is sent again to the next.
	BatchDeadline time.Duration
	// StartTimeout bounds instantiation, the definition and Init.
	StartTimeout time.Duration
	// Instances are made again with the backoff, and a crash loop opens
	// the breaker (its events are shed), as the policy says.
	restart.Policy
	// PoisonAttempts: an event that ends the instance this many times on
	// its own is quarantined.
	PoisonAttempts int
	// ReadDir, if set, is a host directory the module may read (mounted
	// read-only at the same path). Nothing else of the host's is visible.
	ReadDir string
	// Cache holds compiled modules: the same module is compiled once per
	// cache (wazero.NewCompilationCache, or ...WithDir for one on disk
	// that survives restarts).
	// Nil: a cache of this backend's own. Backends given the same cache
	// share the compiled code too (one copy in memory per module).
	Cache wazero.CompilationCache
	// Shared, if set, is used instead of Cache: a cache closed with the
	// last of the backends that use it.
	Shared *SharedCache
	// Limits bound what the module's answers can make the monitor hold.
	Limits wire.Limits
	// LogLinesPerSecond, LogBurst and LogBytesPerSecond bound the module's
	// lines that reach the monitor's log.
	LogLinesPerSecond, LogBurst, LogBytesPerSecond int
}

// DefaultMemoryPages is 256 MiB.
const DefaultMemoryPages = 4096

// maxModuleBytes bounds the module file read at load.
const maxModuleBytes = 256 << 20

// DefaultOptions are goplugin's defaults where they mean the same.
func DefaultOptions(path string) Options {
	return Options{
		Path: path, MemoryPages: DefaultMemoryPages, BatchDeadline: 2 * time.Second, StartTimeout: 30 * time.Second,
		Policy: restart.DefaultPolicy(), PoisonAttempts: 2, Limits: wire.DefaultLimits(), LogLinesPerSecond: 50, LogBurst: 500, LogBytesPerSecond: 16 << 10,
	}
}

// Backend runs a detector in a wasm module, on the caller's goroutine:
// a batch is written into the module's memory, handled there, and its
// result read back before Submit returns.
type Backend struct {
	opts     Options
	log      *zap.Logger
	def      detection.Definition
	runtime  wazero.Runtime
	compiled wazero.CompiledModule
	ownCache wazero.CompilationCache // closed with the backend (Options.Cache nil)
	shared   *SharedCache            // released with the backend
	mlog     *moduleLog

	mu         sync.Mutex // Submit and Close
	inst       *instance  // nil: none running
	closed     bool
	enc, split *wire.FlatEncoder
	restart    restart.State
	started    int // instances started

	delivered, findings, crashes, hangs, restarts, redelivered, quarantined, limitKills atomic.Uint64
	answers                                                                             pluginlog.Answers
}

// instance is one instantiation of the module.
type instance struct {
	mod                                   api.Module
	alloc, describe, init, batch, closeFn api.Function
	stack                                 [2]uint64
}

// New compiles the module (or takes it from the cache), instantiates it,
// checks it is a bulkhead detector module and initialises it. Errors name
// what is wrong with the module.
func New(ctx context.Context, opts Options, log *zap.Logger) (*Backend, error) {
	d := DefaultOptions(opts.Path)
	if opts.MemoryPages == 0 {
		opts.MemoryPages = d.MemoryPages
	}
	if opts.MemoryPages > 65536 {
		return nil, fmt.Errorf("wasm module %s: memory of %d pages: at most 65536 (4 GiB)", opts.Path, opts.MemoryPages)
	}
	for _, f := range []struct{ v, def *time.Duration }{{&opts.BatchDeadline, &d.BatchDeadline}, {&opts.StartTimeout, &d.StartTimeout},
		{&opts.BackoffInitial, &d.BackoffInitial}, {&opts.BackoffMax, &d.BackoffMax}, {&opts.BreakerWindow, &d.BreakerWindow}, {&opts.BreakerCooldown, &d.BreakerCooldown}} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	if opts.BreakerCrashes <= 0 {
		opts.BreakerCrashes = d.BreakerCrashes
	}
	if opts.PoisonAttempts <= 0 {
		opts.PoisonAttempts = d.PoisonAttempts
	}
	if opts.LogLinesPerSecond <= 0 {
		opts.LogLinesPerSecond = d.LogLinesPerSecond
	}
	opts.LogBurst = max(opts.LogBurst, 1)
	if opts.LogBytesPerSecond <= 0 {
		opts.LogBytesPerSecond = d.LogBytesPerSecond
	}
	code, err := readModule(opts.Path)
	if err != nil {
		return nil, err
	}
	if opts.ReadDir != "" {
		if st, err := os.Stat(opts.ReadDir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("wasm module %s: read_dir %s: not a directory", opts.Path, opts.ReadDir)
		}
	}
	b := &Backend{opts: opts, log: log, restart: restart.State{Policy: opts.Policy}, enc: wire.NewFlatEncoder(), split: wire.NewFlatEncoder()}
	b.mlog = newModuleLog(log.Named(filepath.Base(opts.Path)), opts.LogLinesPerSecond, opts.LogBurst, opts.LogBytesPerSecond,
		func() { b.answers.Violations.Add(1) })
	cache := opts.Cache
	if opts.Shared != nil {
		if cache = opts.Shared.acquire(); cache == nil {
			return nil, errors.New("wasm: the shared compilation cache was closed with its last backend")
		}
		b.shared = opts.Shared
	} else if cache == nil {
		cache = wazero.NewCompilationCache()
		b.ownCache = cache
	}
	b.runtime = wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
		WithCompilationCache(cache).
		WithMemoryLimitPages(opts.MemoryPages).
		WithCloseOnContextDone(true))
	fail := func(err error) (*Backend, error) {
		b.runtime.Close(context.Background())
		if b.ownCache != nil {
			b.ownCache.Close(context.Background())
		}
		if b.shared != nil {
			b.shared.release()
		}
		return nil, err
	}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, b.runtime); err != nil {
		return fail(fmt.Errorf("wasm: WASI: %w", err))
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute) // compiling a large module on a busy host
	b.compiled, err = b.runtime.CompileModule(cctx, code)
	cancel()
	if err != nil {
		return fail(fmt.Errorf("wasm module %s: not a WebAssembly module wazero can compile: %s", opts.Path, pluginlog.SafeText(err.Error())))
	}
	if err := checkExports(b.compiled); err != nil {
		return fail(fmt.Errorf("wasm module %s: %w", opts.Path, err))
	}
	inst, def, err := b.start(ctx)
	if err != nil {
		return fail(err)
	}
	b.inst, b.def = inst, def
	return b, nil
}

func readModule(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("wasm module %s: %w", path, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, fmt.Errorf("wasm module %s: not a regular file", path)
	}
	code, err := io.ReadAll(io.LimitReader(f, maxModuleBytes+1))
	if err != nil {
		return nil, fmt.Errorf("wasm module %s: %w", path, err)
	}
	if len(code) > maxModuleBytes {
		return nil, fmt.Errorf("wasm module %s: over %d MiB", path, maxModuleBytes>>20)
	}
	return code, nil
}

// exports are the functions a detector module has (plugins/sdk/wasm), with
// their signatures.
var exports = []struct {
	name     string
	params   []api.ValueType
	result   api.ValueType
	required bool
}{
	{"bulkhead_abi", nil, api.ValueTypeI32, true},
	{"bulkhead_alloc", []api.ValueType{api.ValueTypeI32}, api.ValueTypeI32, true},
	{"bulkhead_describe", nil, api.ValueTypeI64, true},
	{"bulkhead_init", []api.ValueType{api.ValueTypeI32}, api.ValueTypeI64, true},
	{"bulkhead_batch", []api.ValueType{api.ValueTypeI32}, api.ValueTypeI64, true},
	{"bulkhead_close", nil, api.ValueTypeI64, true},
}

func checkExports(cm wazero.CompiledModule) error {
	fns := cm.ExportedFunctions()
	for _, e := range exports {
		f, ok := fns[e.name]
		if !ok {
			return fmt.Errorf("not a bulkhead detector module: no export %s (build it with plugins/sdk/wasm, -buildmode=c-shared)", e.name)
		}
		if !bytes.Equal(f.ParamTypes(), e.params) || len(f.ResultTypes()) != 1 || f.ResultTypes()[0] != e.result {
			return fmt.Errorf("not a bulkhead detector module: export %s has another signature", e.name)
		}
	}
	if _, ok := fns["_initialize"]; !ok {
		return errors.New("not a reactor module: no _initialize export (build it with -buildmode=c-shared)")
	}
	return nil
}

// start instantiates the module, checks its ABI, asks its definition,
// initialises it, and asks the definition again.
func (b *Backend) start(ctx context.Context) (*instance, detection.Definition, error) {
	var def detection.Definition
	ctx, cancel := context.WithTimeout(ctx, b.opts.StartTimeout)
	defer cancel()
	cfg := wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize").
		WithStdout(b.mlog).WithStderr(b.mlog).
		// The monotonic clock is the host's CLOCK_BOOTTIME, the kernel
		// events' clock: event.KernelNow in the module reads it.
		WithSysWalltime().WithNanotime(bootTime, 1).WithSysNanosleep().WithRandSource(rand.Reader).
		WithArgs(filepath.Base(b.opts.Path))
	if b.opts.ReadDir != "" {
		cfg = cfg.WithFSConfig(wazero.NewFSConfig().WithReadOnlyDirMount(b.opts.ReadDir, b.opts.ReadDir))
	}
	mod, err := b.runtime.InstantiateModule(experimental.WithMemoryAllocator(ctx, mmapAllocator{limit: uint64(b.opts.MemoryPages) << 16}), b.compiled, cfg)
	if err != nil {
		return nil, def, fmt.Errorf("wasm module %s: instantiate: %s", b.opts.Path, b.lastWords(err))
	}
	b.started++
	in := &instance{mod: mod, alloc: mod.ExportedFunction("bulkhead_alloc"), describe: mod.ExportedFunction("bulkhead_describe"),
		init: mod.ExportedFunction("bulkhead_init"), batch: mod.ExportedFunction("bulkhead_batch"), closeFn: mod.ExportedFunction("bulkhead_close")}
	fail := func(what string, err error) (*instance, detection.Definition, error) {
		mod.Close(context.Background())
		return nil, def, fmt.Errorf("wasm module %s: %s: %w", b.opts.Path, what, err)
	}
	abi, err := mod.ExportedFunction("bulkhead_abi").Call(ctx)
	if err != nil {
		return fail("abi", errors.New(b.lastWords(err)))
	}
	if abi[0] != ABI {
		return fail("abi", fmt.Errorf("built for ABI version %d; this monitor speaks version %d", uint32(abi[0]), ABI))
	}
	describe := func() (detection.Definition, error) {
		out, err := in.call(ctx, in.describe, nil, 1<<20)
		if err != nil {
			return def, err
		}
		if len(out) == 0 {
			return def, errors.New("no definition: the module never called wasm.Serve (call it from init)")
		}
		var pd wire.Definition
		if err := proto.Unmarshal(out, &pd); err != nil {
			return def, violation(fmt.Errorf("definition: %w", err))
		}
		d := wire.DefinitionFromProto(&pd)
		if err := d.Validate(); err != nil {
			return def, fmt.Errorf("invalid definition: %w", err)
		}
		return d, nil
	}
	if def, err = describe(); err != nil {
		return fail("definition", b.explain(err))
	}
	out, err := in.call(ctx, in.init, b.opts.Config, 64<<10)
	if err != nil {
		return fail("init", b.explain(err))
	}
	if len(out) > 0 {
		return fail("init", errors.New(pluginlog.SafeText(string(out))))
	}
	if def, err = describe(); err != nil {
		return fail("definition after init", b.explain(err))
	}
	return in, def, nil
}

// bootTime is CLOCK_BOOTTIME in nanoseconds.
func bootTime() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return ts.Nano()
}

// explain adds what the module said last to a crash's error.
func (b *Backend) explain(err error) error {
	if errors.Is(err, errViolation) {
		return err
	}
	return errors.New(b.lastWords(err))
}

func (b *Backend) lastWords(err error) string {
	s := pluginlog.SafeText(err.Error())
	if lines := b.mlog.lastLines(); len(lines) > 0 {
		s += " (the module last wrote: " + lines[len(lines)-1] + ")"
	}
	return s
}

var (
	// errViolation marks an answer the module cannot be held to: a
	// pointer or length outside its memory, one over its bound, or bytes
	// that are not what was asked for. The instance is ended for it.
	errViolation = errors.New("protocol violation")
	errHang      = errors.New("no answer within the batch deadline")
)

func violation(err error) error { return fmt.Errorf("%w: %w", errViolation, err) }

// call writes input into the module's memory (where bulkhead_alloc says),
// calls fn with its length (or with nothing, for a function without
// parameters), and returns a copy of the answer, at most max bytes.
func (in *instance) call(ctx context.Context, fn api.Function, input []byte, maxOut int) ([]byte, error) {
	stack := in.stack[:]
	nparams := len(fn.Definition().ParamTypes())
	if nparams == 1 {
		stack[0] = uint64(len(input))
		if err := in.alloc.CallWithStack(ctx, stack); err != nil {
			return nil, err
		}
		ptr := uint32(stack[0])
		if len(input) > 0 && !in.mod.Memory().Write(ptr, input) {
			return nil, violation(fmt.Errorf("bulkhead_alloc(%d) answered %#x: outside the module's memory", len(input), ptr))
		}
		stack[0] = uint64(len(input))
	}
	if err := fn.CallWithStack(ctx, stack); err != nil {
		return nil, err
	}
	ptr, n := uint32(stack[0]>>32), uint32(stack[0])
	if n == 0 {
		return nil, nil
	}
	if int(n) > maxOut {
		return nil, violation(fmt.Errorf("an answer of %d bytes, over the limit of %d", n, maxOut))
	}
	out, ok := in.mod.Memory().Read(ptr, n)
	if !ok {
		return nil, violation(fmt.Errorf("an answer at %#x of %d bytes: outside the module's memory", ptr, n))
	}
	return bytes.Clone(out), nil
}

func (b *Backend) Definition() detection.Definition { return b.def }

// Submit hands the batch to the module and calls done with its findings
// before it returns. A trap, exit or hang on the way is handled inside: a
// new instance gets the batch again, so events are delivered at least
// once.
func (b *Backend) Submit(ctx context.Context, events []*event.Event, done backends.Done) {
	if len(events) == 0 {
		done(nil, nil)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		done(nil, backends.ErrUnavailable)
		return
	}
	b.enc.Reset()
	for _, ev := range events {
		b.enc.Add(ev)
	}
	before := b.quarantined.Load()
	fs, err := b.deliver(ctx, b.enc.Bytes(), events)
	b.findings.Add(uint64(len(fs)))
	if err != nil {
		// The findings of the events answered before the breaker opened
		// go out with the error.
		done(fs, err)
		return
	}
	b.delivered.Add(uint64(len(events)) - (b.quarantined.Load() - before))
	done(fs, nil)
}

// deliver sends an encoded batch and its result back, retrying across
// crashes: a batch is sent again once, then split; an event alone is
// quarantined after PoisonAttempts.
func (b *Backend) deliver(ctx context.Context, batch []byte, events []*event.Event) ([]detection.Finding, error) {
	count := len(events)
	for attempt := 1; ; attempt++ {
		if err := b.ensureRunning(ctx); err != nil {
			return nil, err
		}
		fs, err := b.roundTrip(ctx, batch, events)
		if err == nil {
			b.restart.Progressed()
			return fs, nil
		}
		if ctx.Err() != nil {
			b.drop()
			return nil, backends.ErrStopped
		}
		b.crashed(err)
		switch {
		case count > 1 && attempt >= 2:
			return b.deliverEach(ctx, events)
		case count == 1 && attempt >= b.opts.PoisonAttempts:
			b.quarantine(events[0], err)
			return nil, nil
		}
		b.redelivered.Add(uint64(count))
		batch = wire.Redelivered(batch)
	}
}

// deliverEach sends a batch that keeps ending the instance one event at a
// time, so that only a poison event is given up on.
func (b *Backend) deliverEach(ctx context.Context, events []*event.Event) ([]detection.Finding, error) {
	var out []detection.Finding
	for i := range events {
		b.split.Reset()
		b.split.Add(events[i])
		// Each event of the split was sent before, in the batch.
		fs, err := b.deliver(ctx, wire.Redelivered(b.split.Bytes()), events[i:i+1])
		if err != nil {
			return out, err
		}
		out = append(out, fs...)
	}
	return out, nil
}

func (b *Backend) quarantine(ev *event.Event, err error) {
	b.quarantined.Add(1)
	b.log.Error("poison event quarantined: it ended the detector's wasm instance every time it was sent alone",
		zap.Int("attempts", b.opts.PoisonAttempts), zap.String("error", pluginlog.SafeText(firstLine(err.Error()))),
		zap.String("kind", ev.Kind.String()), zap.Uint32("pid", ev.PID), zap.String("comm", pluginlog.SafeText(ev.Comm)),
		zap.Uint64("kernel_time_ns", ev.KernelTimeNs), zap.String("path", pluginlog.SafeText(ev.Open.Resolved)), zap.String("exe", pluginlog.SafeText(ev.Exec.Exe)))
}

// roundTrip runs one batch in the current instance, within the deadline.
func (b *Backend) roundTrip(ctx context.Context, batch []byte, events []*event.Event) ([]detection.Finding, error) {
	cctx, cancel := context.WithTimeout(ctx, b.opts.BatchDeadline)
	defer cancel()
	out, err := b.inst.call(cctx, b.inst.batch, batch, b.opts.Limits.ResultBytes)
	if err != nil {
		var exit *sys.ExitError
		if errors.As(err, &exit) && exit.ExitCode() == sys.ExitCodeDeadlineExceeded && ctx.Err() == nil {
			return nil, errHang
		}
		return nil, err
	}
	res, refused, err := wire.ParseResult(out, len(events), b.opts.Limits)
	if err != nil {
		return nil, violation(err)
	}
	return b.findingsOf(res, refused, events), nil
}

// findingsOf converts a result's findings (bounded by ParseResult); their
// events are the batch's own.
func (b *Backend) findingsOf(res *wire.Result, refused wire.Refused, events []*event.Event) []detection.Finding {
	b.answers.Errored(res.Errors, res.LastError, b.log)
	out := wire.Findings(res, &refused, events)
	b.answers.Refused(refused, len(out), "detector's wasm module", b.log)
	return out
}

// crashed records the end of the current instance (a trap, an exit, a
// hang or a protocol violation) and closes what is left of it.
func (b *Backend) crashed(err error) {
	if b.inst == nil {
		return
	}
	mem := b.inst.mod.Memory()
	limit := uint64(b.opts.MemoryPages) << 16
	atLimit := mem != nil && uint64(mem.Size())+max(limit/4, 16<<20) >= limit
	b.drop()
	b.mlog.flush()
	var exit *sys.ExitError
	exitCode := -1
	if errors.As(err, &exit) {
		exitCode = int(exit.ExitCode())
	}
	fields := []zap.Field{zap.String("error", pluginlog.SafeText(firstLine(err.Error()))), zap.Int("exit_code", exitCode), zap.Strings("last_words", b.mlog.lastLines())}
	switch {
	case errors.Is(err, errHang):
		b.hangs.Add(1)
		b.log.Warn("detector wasm module hung: instance ended at the batch deadline; instantiating it again", fields...)
	case errors.Is(err, errViolation):
		b.answers.Violations.Add(1)
		b.log.Error("detector wasm module broke the protocol: instance ended; instantiating it again", fields...)
	case atLimit:
		b.crashes.Add(1)
		b.limitKills.Add(1)
		b.log.Error("detector wasm module died at its memory limit; instantiating it again", append(fields, zap.Uint32("memory_pages", b.opts.MemoryPages))...)
	default:
		b.crashes.Add(1)
		b.log.Warn("detector wasm module failed (trap or exit); instantiating it again", fields...)
	}
	b.countFailure()
}

// firstLine is s up to its first newline (a trap's error goes on with
// the wasm stack, function numbers only).
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// drop ends the current instance.
func (b *Backend) drop() {
	if b.inst != nil {
		b.inst.mod.Close(context.Background())
		b.inst = nil
	}
}

// countFailure notes a crash, hang or failed start, and says so when it
// opens the breaker.
func (b *Backend) countFailure() {
	if !b.restart.Failed() {
		return
	}
	b.log.Error("detector wasm module is crash-looping: circuit breaker open, its events are shed until the cool-down ends",
		zap.Int("crashes", b.opts.BreakerCrashes), zap.Duration("window", b.opts.BreakerWindow), zap.Duration("cooldown", b.opts.BreakerCooldown))
}

// ensureRunning instantiates the module again if there is no instance,
// after the backoff; with the breaker open it returns ErrUnavailable.
func (b *Backend) ensureRunning(ctx context.Context) error {
	for b.inst == nil {
		if b.restart.Cooling() {
			return backends.ErrUnavailable
		}
		if d := b.restart.NextAttempt(); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return backends.ErrStopped
			}
		}
		inst, _, err := b.start(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return backends.ErrStopped
			}
			b.log.Warn("detector wasm module did not start", zap.String("error", pluginlog.SafeText(err.Error())))
			if errors.Is(err, errViolation) {
				b.answers.Violations.Add(1)
			} else {
				b.crashes.Add(1)
			}
			b.countFailure()
			continue
		}
		b.inst = inst
		b.restarts.Add(1)
		b.log.Info("detector wasm module instantiated again", zap.Uint64("restarts", b.restarts.Load()))
	}
	return nil
}

func (b *Backend) Stats() backends.Stats {
	return backends.Stats{
		Delivered: b.delivered.Load(), Findings: b.findings.Load(), Errors: b.answers.Errors.Load(),
		Crashes: b.crashes.Load(), Hangs: b.hangs.Load(), Restarts: b.restarts.Load(),
		Redelivered: b.redelivered.Load(), Quarantined: b.quarantined.Load(), LimitKills: b.limitKills.Load(),
		ProtocolViolations: b.answers.Violations.Load(), FindingsRefused: b.answers.FindingsRefused.Load(), LogLinesDropped: b.mlog.limit.Dropped(),
		BreakerOpen: b.restart.Open(),
	}
}

// Close closes the detector (its Close within a second) and frees the
// module. Closing a closed backend does nothing.
func (b *Backend) Close(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	var err error
	if b.inst != nil {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		var out []byte
		out, err = b.inst.call(cctx, b.inst.closeFn, nil, 64<<10)
		cancel()
		if err == nil && len(out) > 0 {
			err = errors.New(pluginlog.SafeText(string(out)))
		}
		if err != nil {
			err = fmt.Errorf("close detector %s: %s", pluginlog.SafeText(b.def.Name), pluginlog.SafeText(err.Error()))
		}
		b.drop()
	}
	b.mlog.flush()
	b.runtime.Close(context.Background())
	if b.ownCache != nil {
		b.ownCache.Close(context.Background())
	}
	if b.shared != nil {
		b.shared.release()
	}
	return err
}

// SharedCache is a compilation cache for the backends of one monitor's
// configuration: each module is compiled, and held in memory, once for
// all of them; it is closed with the last of them.
type SharedCache struct {
	mu     sync.Mutex
	cache  wazero.CompilationCache
	refs   int
	closed bool
}

// NewSharedCache shares c (wazero.NewCompilationCache or ...WithDir).
func NewSharedCache(c wazero.CompilationCache) *SharedCache { return &SharedCache{cache: c} }

func (s *SharedCache) acquire() wazero.CompilationCache {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.refs++
	return s.cache
}

func (s *SharedCache) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refs--; s.refs == 0 {
		s.closed = true
		s.cache.Close(context.Background())
	}
}
