package export

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The spool is a directory of append-only segment files, seg-<n>.log,
// each a sequence of records:
//
//	u32 little-endian payload length | u32 CRC-32C of the payload | payload
//
// and a file "cursor" that says where the first record not yet
// acknowledged by JetStream starts (segment, offset, CRC-32C of both).
// Every record is appended before it is published (write-ahead), so a
// finding in flight survives a SIGKILL of the monitor; records behind the
// cursor are acknowledged and their segments are deleted.

// SyncPolicy is when the spool calls fsync.
type SyncPolicy string

const (
	// SyncAlways fsyncs every append before it returns: a finding
	// survives a power loss once WriteFinding returns.
	SyncAlways SyncPolicy = "always"
	// SyncInterval fsyncs in the background every interval when
	// something was appended: a power loss can lose that interval; a
	// crash or a SIGKILL of the monitor loses nothing (the data is in the
	// kernel's page cache).
	SyncInterval SyncPolicy = "interval"
	// SyncNever leaves it to the kernel (crash- and SIGKILL-safe, not
	// power-loss-safe).
	SyncNever SyncPolicy = "never"
)

const (
	recHeader = 8
	// MaxRecord bounds one record; a longer length read back is damage.
	MaxRecord  = 8 << 20
	cursorFile = "cursor"
	lockFile   = "lock"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrSpoolFull is returned by Append when the record does not fit: the
// newest record is the one dropped, and counted.
var ErrSpoolFull = errors.New("export spool full: the record was dropped and counted")

// Pos is a place in the spool: a segment and an offset in it.
type Pos struct {
	Seg uint64
	Off int64
}

func (p Pos) less(q Pos) bool { return p.Seg < q.Seg || p.Seg == q.Seg && p.Off < q.Off }

// SpoolOptions bound and tune a spool.
type SpoolOptions struct {
	MaxBytes     int64         // all segments together; default 256 MiB
	SegmentBytes int64         // a segment is closed past this; default MaxBytes/16, at least 64 KiB
	Sync         SyncPolicy    // default SyncInterval
	SyncEvery    time.Duration // for SyncInterval; default 200 ms
}

// SpoolStats are a spool's counters.
type SpoolStats struct {
	Appended       uint64 // records appended since open
	Dropped        uint64 // records refused: the spool was full
	Pending        int64  // records not yet acknowledged (on disk)
	PendingBytes   int64  // their bytes
	DiskBytes      int64  // all segment files together (bounded by MaxBytes)
	Recovered      int64  // records found pending at open
	CorruptRecords uint64 // damaged records cut at open or skipped when read
	Syncs          uint64 // fsync calls
	SyncErrors     uint64
}

type segment struct {
	n    uint64
	size int64
}

// Spool is a bounded write-ahead log of records on local disk. Append is
// safe from any goroutine; the Reader and Ack belong to one consumer.
type Spool struct {
	dir  string
	opts SpoolOptions
	lock *os.File

	mu      sync.Mutex
	w       *os.File
	segs    []segment // ascending; the last is the one written
	total   int64
	cursor  Pos
	pending int64
	dirty   bool
	st      SpoolStats
	closed  bool
	notify  chan struct{}

	lastCursor  time.Time
	savedCursor Pos
	stopSync    chan struct{}
	syncDone    chan struct{}
	closeOnce   sync.Once
}

// OpenSpool opens (or creates) the spool in dir, cuts a torn record left
// by a crash, and resumes at the saved cursor. One process at a time: a
// second OpenSpool of the same directory fails.
func OpenSpool(dir string, o SpoolOptions) (*Spool, error) {
	if o.MaxBytes <= 0 {
		o.MaxBytes = 256 << 20
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = max(o.MaxBytes/16, 64<<10)
	}
	switch o.Sync {
	case "":
		o.Sync = SyncInterval
	case SyncAlways, SyncInterval, SyncNever:
	default:
		return nil, fmt.Errorf("spool sync %q: use always, interval or never", o.Sync)
	}
	if o.SyncEvery <= 0 {
		o.SyncEvery = 200 * time.Millisecond
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("spool %s is in use by another process: %w", dir, err)
	}
	s := &Spool{dir: dir, opts: o, lock: lock, notify: make(chan struct{}, 1)}
	if err := s.recover(); err != nil {
		lock.Close()
		return nil, err
	}
	if o.Sync == SyncInterval {
		s.stopSync, s.syncDone = make(chan struct{}), make(chan struct{})
		go s.syncLoop()
	}
	return s, nil
}

func (s *Spool) segPath(n uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("seg-%016x.log", n))
}

// recover lists the segments, validates every record from the cursor on,
// cuts each segment at its first damaged record, and opens the last one
// for appending.
func (s *Spool) recover() error {
	names, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	for _, e := range names {
		name := e.Name()
		if !strings.HasPrefix(name, "seg-") || !strings.HasSuffix(name, ".log") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, "seg-"), ".log"), 16, 64)
		if err != nil {
			continue
		}
		s.segs = append(s.segs, segment{n: n})
	}
	slices.SortFunc(s.segs, func(a, b segment) int {
		if a.n < b.n {
			return -1
		}
		return 1
	})
	s.cursor = s.readCursor()
	if len(s.segs) > 0 && s.cursor.Seg < s.segs[0].n {
		s.cursor = Pos{Seg: s.segs[0].n} // the segments before were acknowledged and deleted
	}
	for i := range s.segs {
		sg := &s.segs[i]
		from := int64(0)
		if sg.n == s.cursor.Seg {
			from = s.cursor.Off
		}
		valid, recs, bad, err := scanSegment(s.segPath(sg.n), from, sg.n < s.cursor.Seg)
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		if bad > 0 {
			s.st.CorruptRecords += uint64(bad)
			if err := os.Truncate(s.segPath(sg.n), valid); err != nil {
				return fmt.Errorf("spool: cut a damaged record: %w", err)
			}
		}
		sg.size = valid
		s.total += valid
		if sg.n >= s.cursor.Seg {
			s.pending += recs
		}
	}
	// Segments wholly behind the cursor, or empty, go; a cursor at the end
	// of its segment moves to the start of the next.
	kept := s.segs[:0]
	for _, sg := range s.segs {
		if sg.n < s.cursor.Seg || sg.size == 0 || sg.n == s.cursor.Seg && s.cursor.Off >= sg.size {
			os.Remove(s.segPath(sg.n))
			s.total -= sg.size
			continue
		}
		kept = append(kept, sg)
	}
	s.segs = kept
	s.st.Recovered = s.pending
	next := s.cursor.Seg + 1
	if len(s.segs) > 0 {
		next = s.segs[len(s.segs)-1].n + 1
		if s.cursor.Seg != s.segs[0].n {
			s.cursor = Pos{Seg: s.segs[0].n}
		}
	} else {
		s.cursor = Pos{Seg: max(next, 1)}
		next = s.cursor.Seg
	}
	s.savedCursor = Pos{Seg: ^uint64(0)}
	s.saveCursorLocked()
	// Append to a fresh segment: the last one may have been cut.
	return s.openSegment(next)
}

// scanSegment validates the records of a segment file from offset from:
// the length of its valid prefix, the records in it from from on, and
// how many damaged records follow (1 when the tail is damaged or torn).
// acked segments are not read: their records are all behind the cursor.
func scanSegment(path string, from int64, acked bool) (valid int64, recs int64, bad int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, 0, err
	}
	if acked {
		return st.Size(), 0, 0, nil
	}
	size := st.Size()
	if from > size {
		from = size
	}
	r := io.NewSectionReader(f, from, size-from)
	off := from
	var hdr [recHeader]byte
	buf := make([]byte, 0, 64<<10)
	for off < size {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return off, recs, 1, nil
		}
		n := int64(binary.LittleEndian.Uint32(hdr[:4]))
		if n > MaxRecord || off+recHeader+n > size {
			return off, recs, 1, nil
		}
		buf = slices.Grow(buf[:0], int(n))[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return off, recs, 1, nil
		}
		if crc32.Checksum(buf, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
			return off, recs, 1, nil
		}
		off += recHeader + n
		recs++
	}
	return off, recs, 0, nil
}

// openSegment creates segment n and makes it the one written. Called
// with mu held (or before the spool is shared).
func (s *Spool) openSegment(n uint64) error {
	f, err := os.OpenFile(s.segPath(n), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("spool: %w", err)
	}
	if s.w != nil {
		s.w.Close()
	}
	s.w = f
	if len(s.segs) == 0 || s.segs[len(s.segs)-1].n != n {
		s.segs = append(s.segs, segment{n: n, size: st.Size()})
		s.total += st.Size()
	}
	if s.opts.Sync != SyncNever {
		s.syncDir()
	}
	return nil
}

func (s *Spool) syncDir() {
	if d, err := os.Open(s.dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// Append writes one record (the payload, framed and checksummed) at the
// end of the spool. It returns ErrSpoolFull when the spool has no room:
// the record is dropped (the newest is what is lost) and counted. With
// SyncAlways the record is on stable storage when Append returns.
func (s *Spool) Append(payload []byte) error {
	return s.AppendBatch([][]byte{payload})
}

// AppendBatch appends several records with one write (and one fsync with
// SyncAlways). Records that do not fit are dropped and counted, from the
// first one that does not fit on; ErrSpoolFull says some were.
func (s *Spool) AppendBatch(payloads [][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.st.Dropped += uint64(len(payloads))
		return errors.New("export spool closed")
	}
	var buf []byte
	taken := 0
	size := int64(0)
	for _, p := range payloads {
		if len(p) > MaxRecord {
			return fmt.Errorf("record of %d bytes: more than %d", len(p), MaxRecord)
		}
		need := int64(recHeader + len(p))
		if s.total+size+need > s.opts.MaxBytes {
			break
		}
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(p)))
		buf = binary.LittleEndian.AppendUint32(buf, crc32.Checksum(p, castagnoli))
		buf = append(buf, p...)
		size += need
		taken++
	}
	var err error
	if taken > 0 {
		if _, werr := s.w.Write(buf); werr != nil {
			// A short write leaves a torn record: cut it so the segment stays
			// readable, and count the batch as dropped.
			last := &s.segs[len(s.segs)-1]
			s.w.Truncate(last.size)
			s.st.Dropped += uint64(len(payloads))
			return fmt.Errorf("export spool: %w", werr)
		}
		last := &s.segs[len(s.segs)-1]
		last.size += size
		s.total += size
		s.pending += int64(taken)
		s.st.Appended += uint64(taken)
		s.dirty = true
		if s.opts.Sync == SyncAlways {
			err = s.syncLocked()
		}
		if last.size >= s.opts.SegmentBytes {
			if rerr := s.openSegment(last.n + 1); rerr != nil && err == nil {
				err = rerr
			}
		}
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
	if dropped := len(payloads) - taken; dropped > 0 {
		s.st.Dropped += uint64(dropped)
		return ErrSpoolFull
	}
	return err
}

func (s *Spool) syncLocked() error {
	if !s.dirty {
		return nil
	}
	s.dirty = false
	s.st.Syncs++
	if err := s.w.Sync(); err != nil {
		s.st.SyncErrors++
		return fmt.Errorf("export spool fsync: %w", err)
	}
	return nil
}

func (s *Spool) syncLoop() {
	defer close(s.syncDone)
	t := time.NewTicker(s.opts.SyncEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stopSync:
			return
		case <-t.C:
			s.mu.Lock()
			s.syncLocked()
			s.mu.Unlock()
		}
	}
}

// Notify is signalled after an append.
func (s *Spool) Notify() <-chan struct{} { return s.notify }

// Cursor is the position of the first record not acknowledged.
func (s *Spool) Cursor() Pos {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cursor
}

// end is how far segment n can be read: its size (appends go whole under
// mu, so a reader never sees half a record), and whether a later segment
// exists.
func (s *Spool) end(n uint64) (size int64, next uint64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, sg := range s.segs {
		if sg.n >= n {
			if sg.n > n { // n was deleted: go on at the next one
				return -1, sg.n, true
			}
			if i+1 < len(s.segs) {
				return sg.size, s.segs[i+1].n, true
			}
			return sg.size, 0, false
		}
	}
	return 0, 0, false
}

// rotate closes the segment being written and starts the next; it
// returns the new segment's number.
func (s *Spool) rotate() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.segs[len(s.segs)-1].n + 1
	if err := s.openSegment(n); err != nil {
		return n - 1
	}
	return n
}

// Ack moves the cursor to p (the end of the records acknowledged, in
// order) and deletes the segments wholly behind it. n is how many records
// that acknowledges. The cursor is saved at most every 50 ms (and at
// Close): after a crash, the records acknowledged since are sent again and
// JetStream's duplicate window drops them.
func (s *Spool) Ack(p Pos, n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.cursor.less(p) {
		return
	}
	s.cursor = p
	s.pending -= n
	last := s.segs[len(s.segs)-1]
	// Caught up on a segment of some size: start another so this one can go.
	if p.Seg == last.n && p.Off == last.size && last.size >= min(1<<20, s.opts.SegmentBytes) {
		if err := s.openSegment(last.n + 1); err == nil {
			s.cursor = Pos{Seg: last.n + 1}
		}
	}
	for len(s.segs) > 1 && s.segs[0].n < s.cursor.Seg {
		os.Remove(s.segPath(s.segs[0].n))
		s.total -= s.segs[0].size
		s.segs = s.segs[1:]
	}
	if time.Since(s.lastCursor) >= 50*time.Millisecond {
		s.saveCursorLocked()
	}
}

func (s *Spool) saveCursorLocked() {
	if s.cursor == s.savedCursor {
		return
	}
	var b [20]byte
	binary.LittleEndian.PutUint64(b[0:], s.cursor.Seg)
	binary.LittleEndian.PutUint64(b[8:], uint64(s.cursor.Off))
	binary.LittleEndian.PutUint32(b[16:], crc32.Checksum(b[:16], castagnoli))
	tmp := filepath.Join(s.dir, cursorFile+".tmp")
	if err := os.WriteFile(tmp, b[:], 0o600); err != nil {
		return
	}
	if os.Rename(tmp, filepath.Join(s.dir, cursorFile)) == nil {
		s.savedCursor = s.cursor
		s.lastCursor = time.Now()
	}
}

// readCursor is the saved cursor, or the start when there is none or it
// is damaged (then everything is sent again; the duplicate window drops
// what JetStream has).
func (s *Spool) readCursor() Pos {
	b, err := os.ReadFile(filepath.Join(s.dir, cursorFile))
	if err != nil || len(b) != 20 || crc32.Checksum(b[:16], castagnoli) != binary.LittleEndian.Uint32(b[16:]) {
		return Pos{}
	}
	return Pos{Seg: binary.LittleEndian.Uint64(b[0:]), Off: int64(binary.LittleEndian.Uint64(b[8:]))}
}

// Stats are the spool's counters now.
func (s *Spool) Stats() SpoolStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	st.Pending = s.pending
	st.DiskBytes = s.total
	for _, sg := range s.segs {
		if sg.n == s.cursor.Seg {
			st.PendingBytes += sg.size - s.cursor.Off
		} else if sg.n > s.cursor.Seg {
			st.PendingBytes += sg.size
		}
	}
	return st
}

// Close syncs, saves the cursor and releases the directory. What is not
// acknowledged stays for the next OpenSpool.
func (s *Spool) Close() error {
	var err error
	s.closeOnce.Do(func() {
		if s.stopSync != nil {
			close(s.stopSync)
			<-s.syncDone
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.closed = true
		if s.opts.Sync != SyncNever {
			s.dirty = true
			err = s.syncLocked()
		}
		s.saveCursorLocked()
		s.w.Close()
		s.lock.Close()
	})
	return err
}

// Reader reads the spool's records in order from a position. It belongs
// to one goroutine.
type Reader struct {
	s    *Spool
	pos  Pos
	f    *os.File
	fseg uint64
	buf  []byte // read-ahead: buf[i:] starts at bufAt
	at   int64
	i    int
}

// NewReader reads from the cursor.
func (s *Spool) NewReader() *Reader { return &Reader{s: s, pos: s.Cursor()} }

// Seek goes to p (a record boundary).
func (r *Reader) Seek(p Pos) {
	r.pos = p
	r.buf, r.i = r.buf[:0], 0
}

// Pos is where the next record starts.
func (r *Reader) Pos() Pos { return r.pos }

// Next returns the next record's payload (valid until the next call) and
// the position after it; ok is false when there is none yet. A damaged
// record (which recovery did not see: damage since) skips the rest of its
// segment, counted.
func (r *Reader) Next() (payload []byte, end Pos, ok bool, err error) {
	for {
		size, next, more := r.s.end(r.pos.Seg)
		if size < 0 { // deleted: behind the cursor
			r.Seek(Pos{Seg: next})
			continue
		}
		if r.pos.Off >= size {
			if !more {
				return nil, r.pos, false, nil
			}
			r.Seek(Pos{Seg: next})
			continue
		}
		p, n, err := r.record(size)
		if err != nil {
			r.s.mu.Lock()
			r.s.st.CorruptRecords++
			r.s.mu.Unlock()
			if !more {
				// The segment being written: appends go on in a new one,
				// and the reader with them.
				next = r.s.rotate()
			}
			r.Seek(Pos{Seg: next})
			return nil, r.pos, false, err
		}
		r.pos.Off += n
		return p, r.pos, true, nil
	}
}

// record reads the record at r.pos, in a segment of size bytes.
func (r *Reader) record(size int64) ([]byte, int64, error) {
	if r.f == nil || r.fseg != r.pos.Seg {
		if r.f != nil {
			r.f.Close()
		}
		f, err := os.Open(r.s.segPath(r.pos.Seg))
		if err != nil {
			r.f = nil
			return nil, 0, err
		}
		r.f, r.fseg = f, r.pos.Seg
		r.buf, r.i = r.buf[:0], 0
	}
	hdr, err := r.bytes(r.pos.Off, recHeader, size)
	if err != nil {
		return nil, 0, err
	}
	n := int64(binary.LittleEndian.Uint32(hdr))
	sum := binary.LittleEndian.Uint32(hdr[4:])
	if n > MaxRecord || r.pos.Off+recHeader+n > size {
		return nil, 0, fmt.Errorf("spool segment %d at %d: a record of %d bytes does not fit", r.pos.Seg, r.pos.Off, n)
	}
	p, err := r.bytes(r.pos.Off+recHeader, int(n), size)
	if err != nil {
		return nil, 0, err
	}
	if crc32.Checksum(p, castagnoli) != sum {
		return nil, 0, fmt.Errorf("spool segment %d at %d: checksum mismatch", r.pos.Seg, r.pos.Off)
	}
	return p, recHeader + n, nil
}

// bytes returns n bytes at off, reading ahead up to 256 KiB (never past
// size, what is wholly written).
func (r *Reader) bytes(off int64, n int, size int64) ([]byte, error) {
	if off >= r.at && off+int64(n) <= r.at+int64(len(r.buf)) && len(r.buf) > 0 {
		s := int(off - r.at)
		return r.buf[s : s+n], nil
	}
	want := max(int64(n), min(256<<10, size-off))
	r.buf = slices.Grow(r.buf[:0], int(want))[:want]
	if _, err := r.f.ReadAt(r.buf, off); err != nil {
		r.buf = r.buf[:0]
		return nil, err
	}
	r.at = off
	return r.buf[:n], nil
}

// Close closes the reader's file.
func (r *Reader) Close() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}
