package sdktest_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every harness stops its server and connection when its test ends.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
