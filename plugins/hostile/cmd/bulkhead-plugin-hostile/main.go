// Command bulkhead-plugin-hostile serves the TEST detector that attacks
// from inside its plugin, to show what the enclave stops.
package main

import (
	"github.com/bulkhead-sec/bulkhead/plugins/hostile"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
)

func main() { sdk.Serve(hostile.New()) }
