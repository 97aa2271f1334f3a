// Command bulkhead-plugin-privesc serves the privesc detector as a plugin.
package main

import (
	"github.com/bulkhead-sec/bulkhead/plugins/privesc"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
)

func main() { sdk.Serve(privesc.New()) }
