package backends_test

import (
	"os"
	"testing"

	"github.com/bulkhead-sec/bulkhead/test/testenv"
)

// TestMain removes the plugin binaries the tests and benchmarks built.
func TestMain(m *testing.M) {
	code := m.Run()
	testenv.Cleanup()
	os.Exit(code)
}
