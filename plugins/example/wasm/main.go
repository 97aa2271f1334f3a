//go:build wasip1

// Command wasm is the example detector as a WebAssembly module for the
// monitor's wasm backend (make build writes bin/bulkhead-plugin-example.wasm).
package main

import (
	"github.com/bulkhead-sec/bulkhead/plugins/example"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/wasm"
)

func init() { wasm.Serve(example.New()) }

func main() {}
