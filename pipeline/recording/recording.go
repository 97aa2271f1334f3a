package recording

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends/goplugin/wire"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/klauspost/compress/zstd"
)

// Format is the container format this package writes and the newest it
// reads.
const Format = 1

// Schema is the event encoding's version: the wire codec's.
const Schema = wire.CodecVersion

// OldestSchema is the oldest event encoding a Reader still reads: schema 2
// recordings have no opened-file fields in their open events; schemas 2
// and 3 have no script or environment in their execs, and none of the
// file, namespace, signal, socket and sys events schema 4 added.
const OldestSchema = wire.OldestCodecVersion

const (
	magic          = "BHREC\x00\r\n" // the \r\n catches a text-mode copy
	frameHeader    = 16
	trailerMark    = 0xffffffff
	maxHeaderBytes = 1 << 20
	// MaxFrameBytes bounds a frame's size, compressed or not: a corrupt
	// length cannot make the reader allocate without limit.
	MaxFrameBytes = 64 << 20
	// FrameEvents is how many events the writer puts in a frame at most.
	FrameEvents = 1024
	// frameAge is how long the writer holds an open frame at most, so a
	// recording cut short (the monitor killed) loses at most that much.
	frameAge = time.Second
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header describes a recording.
type Header struct {
	Format   int       `json:"format"`
	Schema   int       `json:"schema"`
	Created  time.Time `json:"created"`
	Host     string    `json:"host,omitempty"`
	Kernel   string    `json:"kernel,omitempty"`
	Bulkhead string    `json:"bulkhead_version,omitempty"`
	// BootEpochNs lets a replay show the recorded events' wall-clock times.
	BootEpochNs int64 `json:"boot_epoch_ns"`
}

// Timebase is the recorded host's.
func (h Header) Timebase() event.Timebase { return event.TimebaseAt(h.BootEpochNs) }

// Writer writes a recording. It is a sinks.Sink: Write each event, Flush
// when the source is dry, Close at the end (the trailer marks the file
// complete).
type Writer struct {
	w       *bufio.Writer
	enc     *wire.Encoder
	zenc    *zstd.Encoder
	zbuf    []byte
	opened  time.Time // when the open frame got its first event
	events  uint64
	frames  uint64
	written uint64 // bytes
	closed  bool
}

// NewWriter writes the header (Format and Schema are filled in) and
// returns a writer for the events.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	h.Format, h.Schema = Format, Schema
	hb, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	zenc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	rw := &Writer{w: bufio.NewWriterSize(w, 1<<20), enc: wire.NewEncoder(), zenc: zenc}
	b := binary.LittleEndian.AppendUint32([]byte(magic), uint32(len(hb)))
	if err := rw.put(append(b, hb...)); err != nil {
		return nil, err
	}
	return rw, nil
}

func (w *Writer) put(b []byte) error {
	n, err := w.w.Write(b)
	w.written += uint64(n)
	return err
}

// Write adds ev to the open frame, writing the frame when it is full.
func (w *Writer) Write(ev *event.Event) error {
	if w.closed {
		return errors.New("recording: write after close")
	}
	if w.enc.Count() == 0 {
		w.opened = time.Now()
	}
	w.enc.Add(ev)
	if w.enc.Count() >= FrameEvents {
		return w.frame()
	}
	return nil
}

// Flush writes the open frame if it is old enough, and pushes what is
// buffered to the file.
func (w *Writer) Flush() error {
	if w.enc.Count() > 0 && time.Since(w.opened) >= frameAge {
		if err := w.frame(); err != nil {
			return err
		}
	}
	return w.w.Flush()
}

func (w *Writer) frame() error {
	n := w.enc.Count()
	if n == 0 {
		return nil
	}
	raw := w.enc.Bytes()
	w.zbuf = w.zenc.EncodeAll(raw, w.zbuf[:0])
	var h [frameHeader]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(len(w.zbuf)))
	binary.LittleEndian.PutUint32(h[4:], uint32(len(raw)))
	binary.LittleEndian.PutUint32(h[8:], n)
	binary.LittleEndian.PutUint32(h[12:], crc32.Checksum(w.zbuf, castagnoli))
	w.enc.Reset()
	if err := w.put(h[:]); err != nil {
		return err
	}
	if err := w.put(w.zbuf); err != nil {
		return err
	}
	w.events += uint64(n)
	w.frames++
	return nil
}

// Close writes the open frame and the trailer and flushes. It does not
// close the underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	if err := w.frame(); err != nil {
		return err
	}
	w.closed = true
	var t [frameHeader + 8]byte
	binary.LittleEndian.PutUint32(t[0:], trailerMark)
	binary.LittleEndian.PutUint64(t[frameHeader:], w.events)
	if err := w.put(t[:]); err != nil {
		return err
	}
	w.zenc.Close()
	return w.w.Flush()
}

// Stats is what a writer has written.
type Stats struct{ Events, Frames, Bytes uint64 }

// Stats returns the counts so far (events in an open frame not included).
func (w *Writer) Stats() Stats { return Stats{w.events, w.frames, w.written} }

// Reader reads a recording frame by frame.
type Reader struct {
	r      *bufio.Reader
	h      Header
	zdec   *zstd.Decoder
	comp   []byte
	offset int64 // of the next frame
	frames uint64
	events uint64
	done   bool
}

// ErrNotRecording is returned for a file that is not a bulkhead recording.
var ErrNotRecording = errors.New("not a bulkhead recording (no BHREC header)")

// NewReader reads and checks the header.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var pre [len(magic) + 4]byte
	if _, err := io.ReadFull(br, pre[:]); err != nil || string(pre[:len(magic)]) != magic {
		return nil, ErrNotRecording
	}
	n := binary.LittleEndian.Uint32(pre[len(magic):])
	if n > maxHeaderBytes {
		return nil, fmt.Errorf("recording header of %d bytes: the file is damaged", n)
	}
	hb := make([]byte, n)
	if _, err := io.ReadFull(br, hb); err != nil {
		return nil, fmt.Errorf("recording header: the file ends inside it: %w", err)
	}
	var h Header
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, fmt.Errorf("recording header: %w", err)
	}
	if h.Format > Format || h.Schema > Schema {
		return nil, fmt.Errorf("this recording was made by a newer bulkhead (%s): format %d, event schema %d; this bulkhead reads format %d and schema %d or older: replay it with that version or newer",
			orUnknown(h.Bulkhead), h.Format, h.Schema, Format, Schema)
	}
	if h.Format < 1 || h.Schema < OldestSchema {
		return nil, fmt.Errorf("this recording has format %d and event schema %d, which this bulkhead no longer reads (schema %d to %d)", h.Format, h.Schema, OldestSchema, Schema)
	}
	zdec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(MaxFrameBytes))
	if err != nil {
		return nil, err
	}
	return &Reader{r: br, h: h, zdec: zdec, offset: int64(len(pre)) + int64(n)}, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "version unknown"
	}
	return s
}

// Header is the recording's header.
func (r *Reader) Header() Header { return r.h }

// DamageError says where a recording stopped being readable. Everything
// before it was read.
type DamageError struct {
	Offset int64  // byte offset of the damaged frame
	Frame  uint64 // its number, from 1
	Events uint64 // events read before it
	Reason string
}

func (e *DamageError) Error() string {
	return fmt.Sprintf("damaged at byte %d (frame %d, after %d events): %s", e.Offset, e.Frame, e.Events, e.Reason)
}

func (r *Reader) damage(format string, args ...any) error {
	r.done = true
	return &DamageError{Offset: r.offset, Frame: r.frames + 1, Events: r.events, Reason: fmt.Sprintf(format, args...)}
}

// Next returns the next frame's events, in memory of their own (they stay
// valid after later calls). At the end of a complete recording it returns
// io.EOF; a damaged one gives a *DamageError.
func (r *Reader) Next() ([]event.Event, error) {
	if r.done {
		return nil, io.EOF
	}
	var h [frameHeader]byte
	if _, err := io.ReadFull(r.r, h[:]); err != nil {
		return nil, r.damage("the file ends without its trailer: truncated")
	}
	clen := binary.LittleEndian.Uint32(h[0:])
	if clen == trailerMark {
		var t [8]byte
		if _, err := io.ReadFull(r.r, t[:]); err != nil {
			return nil, r.damage("the file ends inside its trailer: truncated")
		}
		if total := binary.LittleEndian.Uint64(t[:]); total != r.events {
			return nil, r.damage("the trailer counts %d events, the frames held %d", total, r.events)
		}
		r.done = true
		return nil, io.EOF
	}
	rawLen, n, sum := binary.LittleEndian.Uint32(h[4:]), binary.LittleEndian.Uint32(h[8:]), binary.LittleEndian.Uint32(h[12:])
	if clen > MaxFrameBytes || rawLen > MaxFrameBytes || n == 0 {
		return nil, r.damage("impossible frame header (%d compressed bytes, %d raw, %d events)", clen, rawLen, n)
	}
	if cap(r.comp) < int(clen) {
		r.comp = make([]byte, clen)
	}
	r.comp = r.comp[:clen]
	if _, err := io.ReadFull(r.r, r.comp); err != nil {
		return nil, r.damage("the file ends inside a frame: truncated")
	}
	if crc32.Checksum(r.comp, castagnoli) != sum {
		return nil, r.damage("checksum mismatch")
	}
	// Fresh memory per frame: the events (their strings and processes point
	// into it) may still be in a detector's queue when the next frame is read.
	raw, err := r.zdec.DecodeAll(r.comp, make([]byte, 0, rawLen))
	if err != nil || len(raw) != int(rawLen) {
		return nil, r.damage("frame does not decompress: %v", err)
	}
	evs, err := wire.Decode(raw)
	if err != nil || len(evs) != int(n) {
		return nil, r.damage("frame does not decode: %v", err)
	}
	r.offset += frameHeader + int64(clen)
	r.frames++
	r.events += uint64(n)
	return evs, nil
}

// Events is how many events have been read.
func (r *Reader) Events() uint64 { return r.events }

// Close releases the decoder.
func (r *Reader) Close() { r.zdec.Close() }
