//go:build wasip1

// Command wasm is the webshell detector as a WebAssembly module for the
// monitor's wasm backend (make build writes bin/bulkhead-plugin-webshell.wasm).
package main

import (
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/wasm"
	"github.com/bulkhead-sec/bulkhead/plugins/webshell"
)

func init() { wasm.Serve(webshell.New()) }

func main() {}
