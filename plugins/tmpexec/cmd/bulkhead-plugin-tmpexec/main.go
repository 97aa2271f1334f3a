// Command bulkhead-plugin-tmpexec serves the tmpexec detector as a plugin.
package main

import (
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"github.com/bulkhead-sec/bulkhead/plugins/tmpexec"
)

func main() { sdk.Serve(tmpexec.New()) }
