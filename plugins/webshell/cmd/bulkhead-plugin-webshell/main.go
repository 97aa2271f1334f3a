// Command bulkhead-plugin-webshell serves the webshell detector as a plugin.
package main

import (
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"github.com/bulkhead-sec/bulkhead/plugins/webshell"
)

func main() { sdk.Serve(webshell.New()) }
