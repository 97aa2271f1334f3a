//go:build wasip1

// Command wasm is the credaccess detector as a WebAssembly module for the
// monitor's wasm backend (make build writes bin/bulkhead-plugin-credaccess.wasm).
package main

import (
	"github.com/bulkhead-sec/bulkhead/plugins/credaccess"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/wasm"
)

func init() { wasm.Serve(credaccess.New()) }

func main() {}
