//go:build wasip1

// Command wasm is the kernelload detector as a WebAssembly module for the
// monitor's wasm backend (make build writes bin/bulkhead-plugin-kernelload.wasm).
package main

import (
	"github.com/bulkhead-sec/bulkhead/plugins/kernelload"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/wasm"
)

func init() { wasm.Serve(kernelload.New()) }

func main() {}
