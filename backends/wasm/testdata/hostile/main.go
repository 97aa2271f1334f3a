//go:build wasip1

// Command hostile is a TEST wasm module that breaks the backend's
// contract on command (its config names the attack): pointers outside its
// memory, answers over their bound, bytes that are not a result, floods
// of findings, evidence it was never sent. It speaks the exports itself,
// not through plugins/sdk/wasm.
package main

import (
	"strings"
	"unsafe"

	"github.com/bulkhead-sec/bulkhead/backends/goplugin/wire"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/detect"
	"google.golang.org/protobuf/proto"
)

var (
	attack  string
	in, out []byte
)

func answer(b []byte) uint64 {
	out = b
	if len(b) == 0 {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(&b[0])))<<32 | uint64(len(b))
}

//go:wasmexport bulkhead_abi
func abi() uint32 { return 1 }

//go:wasmexport bulkhead_alloc
func alloc(n uint32) uint32 {
	if attack == "alloc-outside" && n > 0 {
		return 0xfffffff0
	}
	if cap(in) < int(n) {
		in = make([]byte, n)
	}
	in = in[:n]
	if n == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(&in[0])))
}

//go:wasmexport bulkhead_describe
func describe() uint64 {
	b, _ := proto.Marshal(wire.DefinitionToProto(detect.Definition{Name: "hostile", Version: "1", Kinds: []event.Kind{event.KindOpen}}))
	return answer(b)
}

//go:wasmexport bulkhead_init
func initialize(n uint32) uint64 {
	cfg := string(in[:n])
	for _, a := range []string{"alloc-outside", "ptr-outside", "too-big", "garbage", "flood", "fabricated"} {
		if strings.Contains(cfg, `"`+a+`"`) {
			attack = a
		}
	}
	return 0
}

//go:wasmexport bulkhead_batch
func batch(n uint32) uint64 {
	switch attack {
	case "ptr-outside":
		return 0xffffff00<<32 | 4096
	case "too-big":
		big := make([]byte, 9<<20)
		return answer(big)
	case "garbage":
		return answer([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	case "flood":
		res := &wire.Result{}
		for range 10000 {
			res.Findings = append(res.Findings, &wire.Finding{Rule: []byte("flood"), Severity: uint32(detect.SeverityLow), EventIndexes: []uint32{0}})
		}
		b, _ := proto.Marshal(res)
		return answer(b)
	case "fabricated":
		b, _ := proto.Marshal(&wire.Result{Findings: []*wire.Finding{{Rule: []byte("made-up"), Severity: uint32(detect.SeverityHigh), EventIndexes: []uint32{999}}}})
		return answer(b)
	}
	return 0
}

//go:wasmexport bulkhead_close
func closeDetector() uint64 { return 0 }

func main() {}
