//go:build wasip1

// Command wasm is the tmpexec detector as a WebAssembly module for the
// monitor's wasm backend (make build writes bin/bulkhead-plugin-tmpexec.wasm).
package main

import (
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/wasm"
	"github.com/bulkhead-sec/bulkhead/plugins/tmpexec"
)

func init() { wasm.Serve(tmpexec.New()) }

func main() {}
