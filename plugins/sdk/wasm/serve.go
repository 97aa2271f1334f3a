//go:build wasip1

package wasm

import (
	"context"
	"errors"
	"os"
	"runtime"
	"unsafe"

	"github.com/bulkhead-sec/bulkhead/backends/goplugin/wire"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/detect"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/protobuf/proto"
)

// ABI is the version of the exports' contract; the monitor refuses a
// module of another.
const ABI = 1

// The one detector a module serves. A module is a single-threaded
// instance: the exports are called one at a time, never concurrently.
var (
	served detect.Detector
	log    *zap.Logger
	in     []byte // the monitor writes a call's input here (bulkhead_alloc)
	out    []byte // a call's answer, valid until the next call
	dec    wire.FlatDecoder
)

// Serve makes d the module's detector. Call it from init: in a reactor
// module main never runs.
func Serve(d detect.Detector) {
	served = d
	log = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zapcore.EncoderConfig{
		MessageKey: "msg", LevelKey: "level", NameKey: "logger",
		EncodeLevel: zapcore.LowercaseLevelEncoder, EncodeDuration: zapcore.StringDurationEncoder, LineEnding: zapcore.DefaultLineEnding,
	}), zapcore.Lock(zapcore.AddSync(os.Stderr)), zapcore.DebugLevel))
}

// answer keeps b as the call's answer and returns where it is.
func answer(b []byte) uint64 {
	out = b
	if len(b) == 0 {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(&b[0])))<<32 | uint64(len(b))
}

func errAnswer(err error) uint64 {
	if err == nil {
		return answer(nil)
	}
	return answer([]byte(err.Error()))
}

var errNotServed = errors.New("the module never called wasm.Serve (call it from init)")

//go:wasmexport bulkhead_abi
func exportABI() uint32 { return ABI }

// bulkhead_alloc returns where the monitor may write n bytes of input
// for the next call.
//
//go:wasmexport bulkhead_alloc
func exportAlloc(n uint32) uint32 {
	if cap(in) < int(n) {
		in = make([]byte, n)
	}
	in = in[:n]
	if n == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(&in[0])))
}

// bulkhead_describe answers the definition, a wire.Definition; 0 if none.
//
//go:wasmexport bulkhead_describe
func exportDescribe() uint64 {
	if served == nil {
		return 0
	}
	b, err := proto.Marshal(wire.DefinitionToProto(served.Definition()))
	if err != nil {
		return 0
	}
	return answer(b)
}

// bulkhead_init initialises the detector with the n bytes of JSON
// configuration written at bulkhead_alloc's place; the answer is empty, or
// the error's text.
//
//go:wasmexport bulkhead_init
func exportInit(n uint32) uint64 {
	if served == nil {
		return errAnswer(errNotServed)
	}
	cfg := detect.Config(append([]byte(nil), in[:min(int(n), len(in))]...))
	return errAnswer(served.Init(context.Background(), cfg, log.Named(served.Definition().Name)))
}

// bulkhead_batch hands the detector the flat batch of n bytes written at
// bulkhead_alloc's place; the answer is a wire.Result.
//
//go:wasmexport bulkhead_batch
func exportBatch(n uint32) uint64 {
	res := process(in[:min(int(n), len(in))])
	// Background goroutines the detector started run now, within the
	// batch's deadline: a module has one thread, and nothing runs between
	// calls.
	runtime.Gosched()
	b, err := proto.Marshal(res)
	if err != nil {
		b, _ = proto.Marshal(&wire.Result{Errors: 1, LastError: []byte(err.Error())})
	}
	return answer(b)
}

// bulkhead_close closes the detector; the answer is empty, or the error's
// text.
//
//go:wasmexport bulkhead_close
func exportClose() uint64 {
	if served == nil {
		return 0
	}
	return errAnswer(served.Close(context.Background()))
}

// process is the plugin server's: each event to OnEvent, findings as
// indexes into the batch, within the monitor's bounds.
func process(batch []byte) *wire.Result {
	res := &wire.Result{}
	if served == nil {
		res.Errors, res.LastError = 1, []byte(errNotServed.Error())
		return res
	}
	events, err := dec.Decode(batch)
	if err != nil {
		res.Errors, res.LastError = 1, []byte(err.Error())
		return res
	}
	ctx := context.Background()
	if dec.Redelivered() {
		ctx = detect.WithRedelivered(ctx)
	}
	wire.Evaluate(ctx, served, events, res)
	return res
}
