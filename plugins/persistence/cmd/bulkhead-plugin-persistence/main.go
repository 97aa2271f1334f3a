// Command bulkhead-plugin-persistence serves the persistence detector as a plugin.
package main

import (
	"github.com/bulkhead-sec/bulkhead/plugins/persistence"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
)

func main() { sdk.Serve(persistence.New()) }
