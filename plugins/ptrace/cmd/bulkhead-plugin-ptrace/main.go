// Command bulkhead-plugin-ptrace serves the ptrace detector as a plugin.
package main

import (
	"github.com/bulkhead-sec/bulkhead/plugins/ptrace"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
)

func main() { sdk.Serve(ptrace.New()) }
