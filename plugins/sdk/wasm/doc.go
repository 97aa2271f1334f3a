// Package wasm serves a detector compiled to WebAssembly (GOOS=wasip1
// GOARCH=wasm, -buildmode=c-shared): the monitor's wasm backend
// (backends/wasm) runs the module in wazero, inside its own process, in a
// sandbox that traps instead of crashing and has bounded memory and time.
//
// The same detector package as for a plugin binary, and a tiny main:
//
//	//go:build wasip1
//
//	package main
//
//	func init() { wasm.Serve(mydetector.New()) }
//
//	func main() {}
//
// built with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o my.wasm ./cmd/my-wasm
//
// (a reactor module: the monitor calls its exports, main never runs, so
// Serve is called from init). Everything but this comment is built for
// wasip1 only: the normal build is unaffected.
//
// The exports (ABI version 1, see backends/wasm): bulkhead_abi,
// bulkhead_alloc, bulkhead_describe, bulkhead_init, bulkhead_batch and
// bulkhead_close. Batches arrive in the flat layout of
// backends/goplugin/wire, results leave as wire.Result protobuf, exactly
// as in a plugin process.
package wasm
