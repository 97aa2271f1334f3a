//go:build wasip1

// Command wasm is the privesc detector as a WebAssembly module for the
// monitor's wasm backend (make build writes bin/bulkhead-plugin-privesc.wasm).
package main

import (
	"github.com/bulkhead-sec/bulkhead/plugins/privesc"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/wasm"
)

func init() { wasm.Serve(privesc.New()) }

func main() {}
