// Command bulkhead-plugin-rules serves the rules detector as a plugin.
package main

import (
	"github.com/bulkhead-sec/bulkhead/plugins/rules"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
)

func main() { sdk.Serve(rules.New()) }
