// Command bulkhead-plugin-credaccess serves the credaccess detector as a plugin.
package main

import (
	"github.com/bulkhead-sec/bulkhead/plugins/credaccess"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
)

func main() { sdk.Serve(credaccess.New()) }
