//go:build wasip1

// Command wasm is the rules detector as a WebAssembly module for the
// monitor's wasm backend (make build writes bin/bulkhead-plugin-rules.wasm).
package main

import (
	"github.com/bulkhead-sec/bulkhead/plugins/rules"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/wasm"
)

func init() { wasm.Serve(rules.New()) }

func main() {}
