// Command bulkhead-plugin-outbound serves the outbound detector as a plugin.
package main

import (
	"github.com/bulkhead-sec/bulkhead/plugins/outbound"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
)

func main() { sdk.Serve(outbound.New()) }
