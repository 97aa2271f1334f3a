package test

import (
	"os"
	"testing"

	"github.com/bulkhead-sec/bulkhead/test/testenv"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.Cleanup()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goroutines leaked: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}
