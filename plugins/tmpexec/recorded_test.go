package tmpexec_test

import (
	"slices"
	"testing"

	"github.com/bulkhead-sec/bulkhead/plugins/sdk/sdktest"
	"github.com/bulkhead-sec/bulkhead/plugins/tmpexec"
)

// The recording holds ten seconds of a real host during which
// test/TestRecordReplayBothBackends performed every library technique (go
// test ./test -run TestRecordReplayBothBackends -update-recordings remakes
// it). This detector finds its techniques there, and nothing else.
func TestRecordedTechniques(t *testing.T) {
	got := sdktest.Rules(sdktest.Replay(t, tmpexec.New(), "", "../../testdata/recordings/library.bhrec"))
	if want := []string{"exec-from-writable-dir", "exec-from-writable-dir", "fileless-exec", "exec-from-writable-dir", "exec-from-writable-dir"}; !slices.Equal(got, want) {
		t.Fatalf("findings %q, want %q", got, want)
	}
}
