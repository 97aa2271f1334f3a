// Command bulkhead-plugin-credaccess serves the credaccess detector as a plugin.
package main

import (
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"github.com/bulkhead-sec/bulkhead/plugins/credaccess"
)

func main() { sdk.Serve(credaccess.New()) }
