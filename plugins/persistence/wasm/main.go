//go:build wasip1

// Command wasm is the persistence detector as a WebAssembly module for the
// monitor's wasm backend (make build writes bin/bulkhead-plugin-persistence.wasm).
package main

import (
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/wasm"
	"github.com/bulkhead-sec/bulkhead/plugins/persistence"
)

func init() { wasm.Serve(persistence.New()) }

func main() {}
