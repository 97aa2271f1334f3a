// Command bulkhead-plugin-probe serves the benchmarks' probe detector as a
// plugin.
package main

import (
	"github.com/bulkhead-sec/bulkhead/plugins/probe"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
)

func main() { sdk.Serve(probe.New()) }
