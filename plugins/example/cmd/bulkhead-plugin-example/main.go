// Command bulkhead-plugin-example serves the example detector as a plugin.
package main

import (
	"github.com/bulkhead-sec/bulkhead/plugins/example"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
)

func main() { sdk.Serve(example.New()) }
