package wasm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/bulkhead-sec/bulkhead/backends"
	"github.com/bulkhead-sec/bulkhead/backends/inproc"
	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/credaccess"
	"github.com/bulkhead-sec/bulkhead/plugins/kernelload"
	"github.com/bulkhead-sec/bulkhead/plugins/outbound"
	"github.com/bulkhead-sec/bulkhead/plugins/persistence"
	"github.com/bulkhead-sec/bulkhead/plugins/privesc"
	"github.com/bulkhead-sec/bulkhead/plugins/ptrace"
	"github.com/bulkhead-sec/bulkhead/plugins/rules"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/sdktest"
	"github.com/bulkhead-sec/bulkhead/plugins/tmpexec"
	"github.com/bulkhead-sec/bulkhead/plugins/webshell"
	"go.uber.org/zap/zaptest"
)

// TestLibraryFindsTheSameOnWasm replays the shipped recording (every
// technique of the library's detectors) through each library detector
// that builds for wasip1, in process and as a wasm module, as the
// dispatcher would (its kinds and filter, batches of 256), and asserts the
// findings are the same: rule, severity, summary, techniques, fields and
// evidence, in order.
func TestLibraryFindsTheSameOnWasm(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and compiles nine modules")
	}
	evs := sdktest.Events(t, "../../testdata/recordings/library.bhrec")
	for _, c := range []struct {
		name   string
		d      detection.Detector
		config string
	}{
		{"outbound", outbound.New(), `{"include_loopback": true}`},
		{"privesc", privesc.New(), ""},
		{"kernelload", kernelload.New(), ""},
		{"tmpexec", tmpexec.New(), ""},
		{"webshell", webshell.New(), ""},
		{"rules", rules.New(), ""},
		{"credaccess", credaccess.New(), ""},
		{"persistence", persistence.New(), ""},
		{"ptrace", ptrace.New(), ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			in, err := inproc.New(context.Background(), c.d, detection.Config(c.config), zaptest.NewLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			w := start(t, c.name, c.config, nil)
			if !slices.Equal(in.Definition().Kinds, w.Definition().Kinds) || fmt.Sprint(in.Definition().Filter) != fmt.Sprint(w.Definition().Filter) {
				t.Fatalf("definitions differ: %+v and %+v", in.Definition(), w.Definition())
			}
			want, got := replay(t, in, evs), replay(t, w, evs)
			if len(want) == 0 {
				t.Fatal("no findings in process: the recording is not the library's")
			}
			if !slices.Equal(want, got) {
				t.Fatalf("findings differ:\ninproc %d: %q\nwasm   %d: %q", len(want), want, len(got), got)
			}
			if s := w.Stats(); s.Crashes+s.Hangs+s.ProtocolViolations+s.Errors != 0 {
				t.Fatalf("wasm stats %+v", s)
			}
			t.Logf("%d findings the same", len(want))
		})
	}
}

// replay sends the events b's definition wants in batches of 256 and
// describes every finding.
func replay(t *testing.T, b backends.Backend, evs []*event.Event) []string {
	t.Helper()
	def := b.Definition()
	kinds, m := def.KindSet(), def.Filter.Compile()
	var batch []*event.Event
	var out []string
	flush := func() {
		fs, err := backends.Deliver(context.Background(), b, batch)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			// Fields as JSON objects: a struct's field order is its own
			// in process, a map's (sorted) once they crossed as JSON, as
			// they do to a plugin process too.
			raw, err := json.Marshal(f.Fields)
			if err != nil {
				t.Fatal(err)
			}
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				t.Fatal(err)
			}
			fields, _ := json.Marshal(v)
			s := fmt.Sprintf("%s/%s/%s/%q/%s", f.Rule, f.Severity, f.Summary, f.Techniques, fields)
			for _, ev := range f.Events {
				s += fmt.Sprintf("/%d@%d", ev.PID, ev.KernelTimeNs)
			}
			out = append(out, s)
		}
		batch = batch[:0]
	}
	for _, ev := range evs {
		if !kinds.Has(ev.Kind) || !m.Wants(ev) {
			continue
		}
		if batch = append(batch, ev); len(batch) == 256 {
			flush()
		}
	}
	if len(batch) > 0 {
		flush()
	}
	return out
}
