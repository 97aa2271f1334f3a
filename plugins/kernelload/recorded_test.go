package kernelload_test

import (
	"slices"
	"testing"

	"github.com/bulkhead-sec/bulkhead/plugins/kernelload"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/sdktest"
)

// The recording holds ten seconds of a real host during which
// test/TestRecordReplayBothBackends performed every library technique (go
// test ./test -run TestRecordReplayBothBackends -update-recordings remakes
// it). This detector finds its techniques there, and nothing else.
func TestRecordedTechniques(t *testing.T) {
	got := sdktest.Rules(sdktest.Replay(t, kernelload.New(), "", "../../testdata/recordings/library.bhrec"))
	if want := []string{"bpf-load"}; !slices.Equal(got, want) {
		t.Fatalf("findings %q, want %q", got, want)
	}
}
