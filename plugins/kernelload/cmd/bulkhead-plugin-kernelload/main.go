// Command bulkhead-plugin-kernelload serves the kernelload detector as a plugin.
package main

import (
	"github.com/bulkhead-sec/bulkhead/plugins/kernelload"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
)

func main() { sdk.Serve(kernelload.New()) }
