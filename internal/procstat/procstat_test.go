package procstat

import (
	"os"
	"testing"
	"time"
)

func TestCPUAndStatus(t *testing.T) {
	for start := time.Now(); time.Since(start) < 30*time.Millisecond; {
	}
	if CPU(0) <= 0 {
		t.Error("this process has used no CPU?")
	}
	if self := CPU(os.Getpid()); self <= 0 {
		t.Errorf("CPU(own pid) = %v", self)
	}
	if CPU(1<<30) != 0 {
		t.Error("a missing process has no CPU")
	}
	if Status("VmSize") == 0 || Status("NoSuchField") != 0 {
		t.Error("Status")
	}
}
