//go:build wasip1

// Command wasm is the probe (benchmark) detector as a WebAssembly module for the
// monitor's wasm backend (make build writes bin/bulkhead-plugin-probe.wasm).
package main

import (
	"github.com/bulkhead-sec/bulkhead/plugins/probe"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/wasm"
)

func init() { wasm.Serve(probe.New()) }

func main() {}
