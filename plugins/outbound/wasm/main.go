//go:build wasip1

// Command wasm is the outbound detector as a WebAssembly module for the
// monitor's wasm backend (make build writes bin/bulkhead-plugin-outbound.wasm).
package main

import (
	"github.com/bulkhead-sec/bulkhead/plugins/outbound"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/wasm"
)

func init() { wasm.Serve(outbound.New()) }

func main() {}
