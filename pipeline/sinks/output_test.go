package sinks

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
)

// disk is a writer with room for free more bytes: a write beyond it is cut
// where the room ends and fails with ENOSPC, as write(2) on a full file
// system does.
type disk struct {
	bytes.Buffer
	free   int
	writes int
}

func (d *disk) Write(p []byte) (int, error) {
	d.writes++
	if len(p) <= d.free {
		d.free -= len(p)
		return d.Buffer.Write(p)
	}
	n := d.free
	d.Buffer.Write(p[:n])
	d.free = 0
	return n, syscall.ENOSPC
}

// lines checks that out is whole JSON lines and counts events and
// findings.
func lines(t *testing.T, out []byte) (events, findings int) {
	t.Helper()
	if len(out) > 0 && out[len(out)-1] != '\n' {
		t.Fatalf("output ends in the middle of a line: %q", out[max(0, len(out)-80):])
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line is not one JSON object (%v): %q", err, line)
		}
		if m["type"] == "finding" {
			findings++
		} else {
			events++
		}
	}
	return events, findings
}

func sumWritten(s Stats) (n uint64) {
	for _, v := range s.Written {
		n += v
	}
	return n
}

// A full disk cuts records in the middle and refuses the rest; once space
// is freed the sink writes again, finishes the cut record first, and every
// record is either written whole or counted lost.
func TestOutputRecoversWithoutCuttingALine(t *testing.T) {
	d := &disk{free: 3000}
	out := NewOutput(d, 8<<10, 0) // retry at once: the test drives time by calls
	j := NewJSONTo(out, event.Timebase{})
	evs := sampleEvents()
	var sentEvents, sentFindings, refused uint64
	write := func(n int) {
		for i := 0; i < n; i++ {
			ev := &evs[i%len(evs)]
			sentEvents++
			if err := j.Write(ev); err != nil {
				if !errors.Is(err, ErrLost) {
					t.Fatalf("Write: %v", err)
				}
				refused++
			}
			if i%25 == 0 {
				f := detection.NewFinding(ev, "r", detection.SeverityHigh, "finding")
				sentFindings++
				if err := j.WriteFinding(&f); err != nil && !errors.Is(err, ErrLost) {
					t.Fatalf("WriteFinding: %v", err)
				}
				j.Flush()
			}
		}
		j.Flush()
	}
	write(200) // the disk fills up after a few records
	if out.Failing() == nil || !errors.Is(out.Failing(), syscall.ENOSPC) {
		t.Fatalf("Failing() = %v, want ENOSPC", out.Failing())
	}
	s := out.Stats()
	if s.EventsLost == 0 || s.WriteErrors == 0 || refused > s.EventsLost {
		t.Fatalf("nothing counted lost on a full disk: %+v (refused %d)", s, refused)
	}
	d.free = 1 << 30 // space freed
	write(200)
	if out.Failing() != nil {
		t.Fatalf("still failing after space was freed: %v", out.Failing())
	}
	if err := out.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = out.Stats()
	gotEvents, gotFindings := lines(t, d.Bytes())
	if uint64(gotEvents) != sumWritten(s) || uint64(gotFindings) != s.Findings {
		t.Errorf("output has %d events and %d findings; Stats says %d and %d", gotEvents, gotFindings, sumWritten(s), s.Findings)
	}
	if sumWritten(s)+s.EventsLost != sentEvents || s.Findings+s.FindingsLost != sentFindings {
		t.Errorf("accounting: events %d written + %d lost != %d sent; findings %d + %d != %d",
			sumWritten(s), s.EventsLost, sentEvents, s.Findings, s.FindingsLost, sentFindings)
	}
	if s.Recoveries != 1 {
		t.Errorf("recoveries %d, want 1", s.Recoveries)
	}
	if s.FindingsLost != 0 {
		t.Errorf("%d findings lost: with an 8 KiB backlog, waiting events must make room for them", s.FindingsLost)
	}
	t.Logf("events %d written %d lost, findings %d written, %d failed writes", sumWritten(s), s.EventsLost, s.Findings, s.WriteErrors)
}

// Findings take the room of waiting events; when only findings wait and
// there is no room, a finding is dropped whole and counted.
func TestOutputFindingsEvictEvents(t *testing.T) {
	d := &disk{free: 0}
	out := NewOutput(d, 4<<10, 0)
	j := NewJSONTo(out, event.Timebase{})
	evs := sampleEvents()
	for i := 0; i < 100; i++ {
		j.Write(&evs[1])
	}
	eventsBefore := out.Stats().EventsLost
	f := detection.NewFinding(&evs[1], "r", detection.SeverityHigh, "keep me")
	if err := j.WriteFinding(&f); err != nil {
		t.Fatalf("a finding was dropped while events waited: %v", err)
	}
	if out.Stats().EventsLost <= eventsBefore {
		t.Fatal("no waiting event made room for the finding")
	}
	lost := 0
	for i := 0; i < 100; i++ {
		if err := j.WriteFinding(&f); errors.Is(err, ErrLost) {
			lost++
		}
	}
	s := out.Stats()
	if lost == 0 || uint64(lost) != s.FindingsLost {
		t.Fatalf("%d findings refused, %d counted lost", lost, s.FindingsLost)
	}
	d.free = 1 << 30
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	_, findings := lines(t, d.Bytes())
	if uint64(findings) != out.Stats().Findings || findings != 101-lost {
		t.Fatalf("%d findings written, want %d", findings, 101-lost)
	}
}

// cutFile is a regular file that takes only limit bytes.
type cutFile struct {
	*os.File
	limit int
}

func (c *cutFile) Write(p []byte) (int, error) {
	if len(p) <= c.limit {
		c.limit -= len(p)
		return c.File.Write(p)
	}
	n, _ := c.File.Write(p[:c.limit])
	c.limit = 0
	return n, syscall.ENOSPC
}

// A record still cut when the output closes is truncated off the file, so
// the next run appending to it starts on a line of its own; what waited is
// counted lost.
func TestOutputCloseTruncatesACutRecord(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := NewOutput(&cutFile{File: f, limit: 1000}, 0, 0)
	j := NewJSONTo(out, event.Timebase{})
	evs := sampleEvents()
	for i := range 10 {
		j.Write(&evs[i%len(evs)])
	}
	ff := detection.NewFinding(&evs[0], "r", detection.SeverityHigh, "lost at exit")
	j.WriteFinding(&ff)
	j.Flush()
	err = out.Close()
	if !errors.Is(err, ErrLost) {
		t.Fatalf("Close = %v, want ErrLost", err)
	}
	got, _ := os.ReadFile(f.Name())
	events, _ := lines(t, got)
	s := out.Stats()
	if uint64(events) != sumWritten(s) || sumWritten(s)+s.EventsLost != 10 || s.FindingsLost != 1 {
		t.Fatalf("file has %d events; stats %+v", events, s)
	}
	if len(got) == 1000 {
		t.Fatal("nothing was truncated: the write limit fell exactly on a line end")
	}
}

// A writer that fails is not tried on every call, only every retry.
func TestOutputRetriesAtMostEveryInterval(t *testing.T) {
	d := &disk{free: 0}
	out := NewOutput(d, 1<<10, 1<<62)
	j := NewJSONTo(out, event.Timebase{})
	evs := sampleEvents()
	for range 1000 {
		j.Write(&evs[1])
		j.Flush()
	}
	if d.writes != 1 {
		t.Fatalf("%d write calls on a failing writer, want 1", d.writes)
	}
	if s := out.Stats(); s.EventsLost == 0 || s.WriteErrors != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func BenchmarkTextOpen(b *testing.B) {
	evs := sampleEvents()
	s := NewText(discard{}, event.Timebase{})
	b.ReportAllocs()
	for b.Loop() {
		s.Write(&evs[1])
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
