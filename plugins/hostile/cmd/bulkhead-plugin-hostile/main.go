// Command bulkhead-plugin-hostile serves the TEST detector that attacks
// from inside its plugin, to show what the enclave stops.
package main

import (
	"os"
	"runtime"

	"github.com/bulkhead-sec/bulkhead/plugins/hostile"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
)

// The main goroutine keeps the main thread, where some attacks must run.
func init() { runtime.LockOSThread() }

func main() {
	d := hostile.New()
	go func() {
		sdk.Serve(d)
		os.Exit(0)
	}()
	d.ServeMainThread()
}
