//go:build wasip1

// Command wasm is the chaos detector as a WebAssembly module for the
// monitor's wasm backend (make build writes bin/bulkhead-plugin-chaos.wasm).
package main

import (
	"github.com/bulkhead-sec/bulkhead/plugins/chaos"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/wasm"
)

func init() { wasm.Serve(chaos.New()) }

func main() {}
