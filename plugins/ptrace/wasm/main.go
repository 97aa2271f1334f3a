//go:build wasip1

// Command wasm is the ptrace detector as a WebAssembly module for the
// monitor's wasm backend (make build writes bin/bulkhead-plugin-ptrace.wasm).
package main

import (
	"github.com/bulkhead-sec/bulkhead/plugins/ptrace"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/wasm"
)

func init() { wasm.Serve(ptrace.New()) }

func main() {}
