package wire_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/bulkhead-sec/bulkhead/backends/goplugin/wire"
	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/chaos"
	"github.com/bulkhead-sec/bulkhead/plugins/credaccess"
	"github.com/bulkhead-sec/bulkhead/plugins/example"
	"github.com/bulkhead-sec/bulkhead/plugins/kernelload"
	"github.com/bulkhead-sec/bulkhead/plugins/outbound"
	"github.com/bulkhead-sec/bulkhead/plugins/persistence"
	"github.com/bulkhead-sec/bulkhead/plugins/privesc"
	"github.com/bulkhead-sec/bulkhead/plugins/probe"
	"github.com/bulkhead-sec/bulkhead/plugins/ptrace"
	"github.com/bulkhead-sec/bulkhead/plugins/rules"
	"github.com/bulkhead-sec/bulkhead/plugins/tmpexec"
	"github.com/bulkhead-sec/bulkhead/plugins/webshell"
	"go.uber.org/zap"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// rawDefinition is a Describe answer as a hostile plugin writes it: a
// name, kinds and its filter lists, field by field.
type rawDefinition struct {
	kinds                     []uint64
	comms, exclude, prefixes  []string
	prefixCount, prefixRepeat int // prefixes: this many more copies of "/"+strings.Repeat("a", prefixRepeat)
}

func (d rawDefinition) bytes() []byte {
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	b = protowire.AppendString(b, "rogue")
	for _, k := range d.kinds {
		b = protowire.AppendTag(b, 4, protowire.VarintType)
		b = protowire.AppendVarint(b, k)
	}
	for _, l := range []struct {
		num  protowire.Number
		list []string
	}{{5, d.comms}, {6, d.exclude}, {7, d.prefixes}} {
		for _, s := range l.list {
			b = protowire.AppendTag(b, l.num, protowire.BytesType)
			b = protowire.AppendString(b, s)
		}
	}
	one := "/" + strings.Repeat("a", d.prefixRepeat)
	for range d.prefixCount {
		b = protowire.AppendTag(b, 7, protowire.BytesType)
		b = protowire.AppendString(b, one)
	}
	return b
}

// monitorDescribes reads a Describe answer as the monitor does (goplugin's
// start): gRPC's codec, DefinitionFromProto, Validate.
func monitorDescribes(t *testing.T, raw []byte) (detection.Definition, error) {
	t.Helper()
	var pd wire.Definition
	if err := wire.Codec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(raw)}, &pd); err != nil {
		t.Fatal(err)
	}
	def := wire.DefinitionFromProto(&pd)
	return def, def.Validate()
}

func repeat(n int, f func(i int) string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

// A plugin's filter costs the monitor a scan of every list for each event
// of the plugin's kinds (in the one goroutine that reads the kernel's
// events too). 1,024 prefixes and 1,024 excluded comms cost 13 µs an
// event: a filter over detection's bounds is refused, with a clear error, at
// the plugin's start; the monitor holds no more than one entry over them.
func TestAttackFilterOverItsBoundsIsRefused(t *testing.T) {
	open := []uint64{uint64(event.KindOpen)}
	comm := func(i int) string { return fmt.Sprintf("comm%011d", i) }
	for _, c := range []struct {
		name string
		def  rawDefinition
		want string // "" accepted
	}{
		{"at the bounds", rawDefinition{kinds: open, comms: repeat(64, comm), exclude: repeat(64, comm),
			prefixes: repeat(64, func(i int) string { return fmt.Sprintf("/%0190d", i) })}, ""},
		{"one prefix over the count", rawDefinition{kinds: open, prefixes: repeat(65, func(i int) string { return fmt.Sprint("/", i) })}, "more than 64 path prefixes"},
		{"1,024 excluded comms", rawDefinition{kinds: open, exclude: repeat(1024, comm)}, "more than 64 excluded comms"},
		{"1,024 comms", rawDefinition{kinds: open, comms: repeat(1024, comm)}, "more than 64 comms"},
		{"1,000,000 prefixes", rawDefinition{kinds: open, prefixCount: 1_000_000}, "more than 64 path prefixes"},
		{"a prefix over PATH_MAX", rawDefinition{kinds: open, prefixCount: 1, prefixRepeat: 5000}, "path prefixes is over 4096 bytes"},
		{"64 prefixes of 4 KiB", rawDefinition{kinds: open, prefixCount: 64, prefixRepeat: 4000}, "over 16384: list fewer or shorter ones"},
		{"a kind over 16 bits", rawDefinition{kinds: []uint64{1<<16 + uint64(event.KindOpen)}}, "unknown event kind 65535"},
	} {
		t.Run(c.name, func(t *testing.T) {
			def, err := monitorDescribes(t, c.def.bytes())
			f := def.Filter
			if len(f.Comms) > detection.MaxFilterEntries+1 || len(f.ExcludeComms) > detection.MaxFilterEntries+1 || len(f.PathPrefixes) > detection.MaxFilterEntries+1 {
				t.Errorf("the monitor holds %d, %d, %d entries", len(f.Comms), len(f.ExcludeComms), len(f.PathPrefixes))
			}
			for _, p := range f.PathPrefixes {
				if len(p) > detection.MaxFilterEntry+1 {
					t.Errorf("the monitor holds a prefix of %d bytes", len(p))
				}
			}
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want == "":
			case err == nil || !strings.Contains(err.Error(), c.want):
				t.Fatalf("err %v, want it to say %q", err, c.want)
			case !errors.Is(err, detection.ErrFilterBounds) && !strings.Contains(c.want, "kind"):
				t.Fatalf("err %v is not ErrFilterBounds", err)
			}
		})
	}
}

// Every detector in plugins/ fits the filter bounds, through the wire,
// before Init and after it with its default configuration. (credaccess's
// filter grows with its configured files: 6 prefixes of its own and one
// for each pattern.)
func TestBuiltInDetectorsFitTheFilterBounds(t *testing.T) {
	for _, d := range []detection.Detector{chaos.New(), credaccess.New(), example.New(), kernelload.New(), outbound.New(),
		persistence.New(), privesc.New(), probe.New(), ptrace.New(), rules.New(), tmpexec.New(), webshell.New()} {
		name := d.Definition().Name
		t.Run(name, func(t *testing.T) {
			check := func(when string) {
				def := d.Definition()
				back := wire.DefinitionFromProto(wire.DefinitionToProto(def))
				if err := back.Validate(); err != nil {
					t.Errorf("%s: %v", when, err)
				}
				t.Logf("%s: %d comms, %d excluded, %d path prefixes", when, len(def.Filter.Comms), len(def.Filter.ExcludeComms), len(def.Filter.PathPrefixes))
			}
			check("before init")
			if err := d.Init(context.Background(), nil, zap.NewNop()); err != nil {
				t.Skipf("init with no configuration: %v", err)
			}
			check("after init")
			d.Close(context.Background())
		})
	}
	// credaccess with as many files as its filter takes, and one more.
	files := func(n int) []byte {
		return fmt.Appendf(nil, `{"files":[%s]}`, strings.Join(repeat(n, func(i int) string { return fmt.Sprintf(`"/srv/secret/%d/*"`, i) }), ","))
	}
	for n, ok := range map[int]bool{detection.MaxFilterEntries - 6: true, detection.MaxFilterEntries - 5: false} {
		d := credaccess.New()
		if err := d.Init(context.Background(), files(n), zap.NewNop()); err != nil {
			t.Fatal(err)
		}
		err := wire.DefinitionFromProto(wire.DefinitionToProto(d.Definition())).Validate()
		if (err == nil) != ok {
			t.Errorf("credaccess with %d files: %v", n, err)
		}
	}
}
