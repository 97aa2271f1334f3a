package detection

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"go.uber.org/zap"
)

// Detector is a security detector. The same value runs in the monitor's
// process (backend inproc) or in a plugin process (backend goplugin).
//
// OnEvent is called from one goroutine at a time, in event order. The
// event, and every string in it, is only valid until OnEvent returns: keep
// ev.Clone() if you need it later. Findings may point at the event itself.
type Detector interface {
	// Definition says what the detector is and which events it wants. It
	// is asked before Init and again after, so a detector may narrow its
	// Kinds and Filter to what its configuration needs.
	Definition() Definition
	// Init is called once before any event, with the detector's
	// configuration from the monitor's config file.
	Init(ctx context.Context, cfg Config, log *zap.Logger) error
	// OnEvent looks at one event and returns what it found, if anything.
	// An error is logged and counted; it does not stop the stream.
	OnEvent(ctx context.Context, ev *event.Event) ([]Finding, error)
	// Close is called once at shutdown.
	Close(ctx context.Context) error
}

// Definition declares a detector. The monitor sends a detector only the
// events its Kinds and Filter let through.
type Definition struct {
	Name        string // unique, [a-z0-9_-]+
	Version     string
	Description string
	Kinds       []event.Kind
	Filter      Filter
}

// Filter narrows the events a detector receives, before they leave the
// monitor. Empty fields let everything through.
type Filter struct {
	Comms        []string // only these command names
	ExcludeComms []string // never these command names
	// PathPrefixes keeps only open events whose path starts with one of
	// these, and exec events whose binary does. Other kinds pass. An open
	// matches by the path as passed (made absolute) or by the kernel's path
	// of the file it opened (symlinks followed, no "..": Open.FilePath).
	// A regular file with several names (Nlink > 1) passes whatever its
	// name: it may be a watched file under a hard link's name, which only
	// its identity (Open.ID) tells; the detector decides.
	PathPrefixes []string
}

// Bounds on a filter: the monitor runs Wants, which reads every list, for
// each event of the detector's kinds (in the detector's lane, and in the
// one goroutine that reads the kernel's events), so a detector, a plugin
// above all, must not set what that costs. Validate refuses a filter over
// them; the persistence detector, the largest here, lists 17 prefixes in
// 224 bytes. A prefix is compared up to its length, so what bounds the
// cost of an event is the bytes of all entries (BenchmarkFilterWants:
// 16 KiB cost 0.6 to 1 µs an event at worst).
const (
	MaxFilterEntries = 64       // entries in each of Comms, ExcludeComms and PathPrefixes
	MaxFilterEntry   = 4096     // bytes in one entry: PATH_MAX
	MaxFilterBytes   = 16 << 10 // bytes in all the entries of the three lists
)

// ErrFilterBounds is a filter over MaxFilterEntries, MaxFilterEntry or
// MaxFilterBytes.
var ErrFilterBounds = errors.New("filter over its bounds")

// Empty reports whether the filter lets everything through.
func (f Filter) Empty() bool {
	return len(f.Comms) == 0 && len(f.ExcludeComms) == 0 && len(f.PathPrefixes) == 0
}

// Validate reports what is wrong with a definition.
func (d Definition) Validate() error {
	var errs []error
	if d.Name == "" || strings.Trim(d.Name, "abcdefghijklmnopqrstuvwxyz0123456789_-") != "" {
		errs = append(errs, fmt.Errorf("name %q: use lower-case letters, digits, '-' and '_'", d.Name))
	}
	if len(d.Kinds) == 0 {
		errs = append(errs, errors.New("no event kinds: list the kinds the detector needs"))
	}
	for _, k := range d.Kinds {
		if !k.Valid() {
			errs = append(errs, fmt.Errorf("unknown event kind %d", k))
		}
	}
	return errors.Join(append(errs, d.Filter.validate())...)
}

// validate checks the filter against its bounds.
func (f Filter) validate() error {
	var errs []error
	total := 0
	for _, l := range []struct {
		what string
		list []string
	}{{"comms", f.Comms}, {"excluded comms", f.ExcludeComms}, {"path prefixes", f.PathPrefixes}} {
		if len(l.list) > MaxFilterEntries {
			errs = append(errs, fmt.Errorf("%w: more than %d %s: list fewer (a shorter prefix covers many paths)", ErrFilterBounds, MaxFilterEntries, l.what))
		}
		long := false
		for _, e := range l.list {
			total += len(e)
			long = long || len(e) > MaxFilterEntry
		}
		if long {
			errs = append(errs, fmt.Errorf("%w: one of the %s is over %d bytes", ErrFilterBounds, l.what, MaxFilterEntry))
		}
	}
	if total > MaxFilterBytes {
		errs = append(errs, fmt.Errorf("%w: its entries are %d bytes, over %d: list fewer or shorter ones", ErrFilterBounds, total, MaxFilterBytes))
	}
	return errors.Join(errs...)
}

// KindSet is the set of the definition's kinds.
func (d Definition) KindSet() event.KindSet {
	var s event.KindSet
	for _, k := range d.Kinds {
		s = s.With(k)
	}
	return s
}

// Wants reports whether the filter lets ev through (kinds are checked
// separately, through KindSet).
func (f Filter) Wants(ev *event.Event) bool {
	if len(f.Comms) > 0 && !contains(f.Comms, ev.Comm) {
		return false
	}
	if contains(f.ExcludeComms, ev.Comm) {
		return false
	}
	if len(f.PathPrefixes) > 0 {
		switch ev.Kind {
		case event.KindOpen:
			o := &ev.Open
			return hasPrefix(f.PathPrefixes, o.Resolved) ||
				(o.FilePath != o.Resolved && hasPrefix(f.PathPrefixes, o.KernelPath())) ||
				(o.Nlink > 1 && o.Regular())
		case event.KindExec:
			return hasPrefix(f.PathPrefixes, ev.Exec.Exe)
		}
	}
	return true
}

func hasPrefix(prefixes []string, path string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Config is a detector's configuration, as JSON.
type Config []byte

// Decode unmarshals the configuration into v; an empty configuration
// leaves v as it is, so v can hold the defaults.
func (c Config) Decode(v any) error {
	if len(c) == 0 || string(c) == "null" {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(c)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("detector config: %w", err)
	}
	return nil
}
