// Command bulkhead-plugin-chaos serves the TEST fault-injection detector.
package main

import (
	"github.com/bulkhead-sec/bulkhead/plugins/chaos"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
)

func main() { sdk.Serve(chaos.New()) }
