package persistence_test

import (
	"slices"
	"testing"

	"github.com/bulkhead-sec/bulkhead/plugins/persistence"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/sdktest"
)

// The recording holds ten seconds of a real host during which
// test/TestRecordReplayBothBackends performed every library technique (go
// test ./test -run TestRecordReplayBothBackends -update-recordings remakes
// it). This detector finds its techniques there, and nothing else.
func TestRecordedTechniques(t *testing.T) {
	got := sdktest.Rules(sdktest.Replay(t, persistence.New(), "", "../../testdata/recordings/library.bhrec"))
	if want := []string{"shell-rc-write"}; !slices.Equal(got, want) {
		t.Fatalf("findings %q, want %q", got, want)
	}
}
