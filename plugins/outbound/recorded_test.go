package outbound_test

import (
	"slices"
	"testing"

	"github.com/bulkhead-sec/bulkhead/plugins/outbound"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/sdktest"
)

// The recording holds ten seconds of a real host during which
// test/TestRecordReplayBothBackends performed every library technique (go
// test ./test -run TestRecordReplayBothBackends -update-recordings remakes
// it). This detector finds its techniques there, and nothing else.
func TestRecordedTechniques(t *testing.T) {
	got := sdktest.Rules(sdktest.Replay(t, outbound.New(), `{"include_loopback": true}`, "../../testdata/recordings/library.bhrec"))
	if want := []string{"reverse-shell", "miner-argv"}; !slices.Equal(got, want) {
		t.Fatalf("findings %q, want %q", got, want)
	}
}
