package export

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readAll(t *testing.T, r *Reader) (out []string, ends []Pos) {
	t.Helper()
	for {
		p, end, ok, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return out, ends
		}
		out = append(out, string(p))
		ends = append(ends, end)
	}
}

// Records come back in order across segments, the cursor survives a
// reopen, and acknowledged segments are deleted.
func TestSpoolOrderAckResume(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, SpoolOptions{MaxBytes: 4 << 20, SegmentBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	const n = 5000
	for i := 0; i < n; i++ {
		if err := s.Append([]byte(fmt.Sprintf("record %d %s", i, bytes.Repeat([]byte("x"), i%100)))); err != nil {
			t.Fatal(err)
		}
	}
	r := s.NewReader()
	got, ends := readAll(t, r)
	r.Close()
	if len(got) != n {
		t.Fatalf("read %d records, want %d", len(got), n)
	}
	for i, g := range got {
		if !strings.HasPrefix(g, fmt.Sprintf("record %d ", i)) {
			t.Fatalf("record %d is %q", i, g)
		}
	}
	segsBefore, _ := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	s.Ack(ends[2999], 3000)
	segsAfter, _ := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	if len(segsAfter) >= len(segsBefore) {
		t.Errorf("%d segments after acknowledging 3000 records, %d before: none deleted", len(segsAfter), len(segsBefore))
	}
	if st := s.Stats(); st.Pending != n-3000 {
		t.Errorf("pending %d, want %d", st.Pending, n-3000)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenSpool(dir, SpoolOptions{MaxBytes: 4 << 20, SegmentBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if st := s.Stats(); st.Recovered != n-3000 || st.Pending != n-3000 {
		t.Errorf("reopened: recovered %d, pending %d, want %d", st.Recovered, st.Pending, n-3000)
	}
	r = s.NewReader()
	defer r.Close()
	got, _ = readAll(t, r)
	if len(got) != n-3000 || !strings.HasPrefix(got[0], "record 3000 ") {
		t.Fatalf("after reopen read %d records starting %q, want %d from record 3000", len(got), got[0], n-3000)
	}
}

// A record torn by a crash (and a flipped byte) is cut at open and
// counted; the records before it are intact.
func TestSpoolTornTail(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, SpoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		s.Append([]byte(fmt.Sprintf("r%d", i)))
	}
	s.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	last := segs[len(segs)-1]
	raw, _ := os.ReadFile(last)
	raw[len(raw)-1] ^= 0xff                                     // damage record 9
	raw = append(raw, 0x40, 0, 0, 0, 1, 2, 3, 4, 'h', 'a', 'l') // and half a record after
	os.WriteFile(last, raw, 0o600)
	s, err = OpenSpool(dir, SpoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := s.NewReader()
	defer r.Close()
	got, _ := readAll(t, r)
	if len(got) != 9 || got[8] != "r8" {
		t.Fatalf("got %q, want r0..r8", got)
	}
	if st := s.Stats(); st.CorruptRecords != 1 || st.Pending != 9 {
		t.Errorf("corrupt %d (want 1), pending %d (want 9)", st.CorruptRecords, st.Pending)
	}
	// New records go after the cut ones.
	s.Append([]byte("r10"))
	got, _ = readAll(t, r)
	if len(got) != 1 || got[0] != "r10" {
		t.Errorf("after the cut: %q", got)
	}
}

// A full spool drops the newest records, counts them, and takes records
// again once acknowledged ones leave.
func TestSpoolFullDropsNewest(t *testing.T) {
	s, err := OpenSpool(t.TempDir(), SpoolOptions{MaxBytes: 64 << 10, SegmentBytes: 8 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rec := bytes.Repeat([]byte("y"), 1000)
	ok, full := 0, 0
	for i := 0; i < 100; i++ {
		switch err := s.Append(rec); {
		case err == nil:
			ok++
		case errors.Is(err, ErrSpoolFull):
			full++
		default:
			t.Fatal(err)
		}
	}
	st := s.Stats()
	if ok == 0 || full == 0 || st.Dropped != uint64(full) || st.DiskBytes > 64<<10 {
		t.Fatalf("taken %d, refused %d, stats %+v", ok, full, st)
	}
	r := s.NewReader()
	defer r.Close()
	got, ends := readAll(t, r)
	if len(got) != ok {
		t.Fatalf("read %d, appended %d", len(got), ok)
	}
	s.Ack(ends[len(ends)-1], int64(len(ends)))
	if err := s.Append(rec); err != nil {
		t.Errorf("after acknowledging everything: %v (stats %+v)", err, s.Stats())
	}
}

// One process at a time.
func TestSpoolLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, SpoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := OpenSpool(dir, SpoolOptions{}); err == nil {
		t.Fatal("a second OpenSpool of the same directory worked")
	}
}

// Damage after open (on the disk, under the spool) skips the rest of the
// segment, counted; appends go on in a new segment and are read.
func TestSpoolDamageWhileOpen(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, SpoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, r := range []string{"one", "two", "three"} {
		s.Append([]byte(r))
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	f, err := os.OpenFile(segs[len(segs)-1], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{'X'}, recHeader+3+recHeader) // "two" becomes "Xwo"
	f.Close()
	r := s.NewReader()
	defer r.Close()
	p, _, ok, err := r.Next()
	if !ok || err != nil || string(p) != "one" {
		t.Fatalf("first: %q %v %v", p, ok, err)
	}
	if _, _, ok, err := r.Next(); ok || err == nil {
		t.Fatalf("the damaged record: ok %v, err %v", ok, err)
	}
	s.Append([]byte("four"))
	got, _ := readAll(t, r)
	if len(got) != 1 || got[0] != "four" {
		t.Fatalf("after the damage: %q", got)
	}
	if st := s.Stats(); st.CorruptRecords != 1 {
		t.Errorf("corrupt %d, want 1", st.CorruptRecords)
	}
}
