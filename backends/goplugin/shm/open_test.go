package shm

import (
	"encoding/binary"
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// forged is a ring written by hand, to give Open and TryNext what a
// correct producer never would.
type forged struct {
	magic, version, header, recHdr uint32
	dataSize                       uint64
	fileSize                       int64 // 0: header + dataSize
	prod, cons                     uint64
	seals, consSeals               int
	data                           []byte
}

func goodForge() forged {
	page := uint32(pageSize())
	return forged{Magic, Version, page, RecordHeaderSize, MinDataSize, 0, 0, 0, producerSeals, consumerSeals, nil}
}

func (f forged) files(t testing.TB) (*os.File, *os.File) {
	t.Helper()
	page := pageSize()
	mk := func(size int64, b []byte, seals int) *os.File {
		fd, err := memfd("forged")
		if err != nil {
			t.Fatal(err)
		}
		file := os.NewFile(uintptr(fd), "forged")
		t.Cleanup(func() { _ = file.Close() })
		if err := unix.Ftruncate(fd, size); err != nil {
			t.Fatal(err)
		}
		if _, err := unix.Pwrite(fd, b, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
			t.Fatal(err)
		}
		return file
	}
	size := f.fileSize
	if size == 0 {
		size = int64(page) + int64(f.dataSize)
	}
	h := make([]byte, page+len(f.data))
	binary.LittleEndian.PutUint32(h[offMagic:], f.magic)
	binary.LittleEndian.PutUint32(h[offVersion:], f.version)
	binary.LittleEndian.PutUint32(h[offHeaderSize:], f.header)
	binary.LittleEndian.PutUint32(h[offRecordHdr:], f.recHdr)
	binary.LittleEndian.PutUint64(h[offDataSize:], f.dataSize)
	binary.LittleEndian.PutUint64(h[offProducer:], f.prod)
	copy(h[page:], f.data)
	if int64(len(h)) > size {
		h = h[:size]
	}
	c := make([]byte, 8)
	binary.LittleEndian.PutUint64(c, f.cons)
	return mk(size, h, f.seals), mk(int64(page), c, f.consSeals)
}

// Open refuses descriptors that are not a sane, sealed ring of this
// layout version.
func TestOpenRefusesBadLayouts(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*forged)
	}{
		{"magic", func(f *forged) { f.magic ^= 1 }},
		{"version", func(f *forged) { f.version = Version + 1 }},
		{"header size", func(f *forged) { f.header = 64 }},
		{"record header", func(f *forged) { f.recHdr = 16 }},
		{"data size not a power of two", func(f *forged) { f.dataSize = 3 * MinDataSize }},
		{"data size huge", func(f *forged) { f.dataSize = 1 << 40; f.fileSize = int64(pageSize()) + MinDataSize }},
		{"file shorter than the data", func(f *forged) { f.dataSize = 4 * MinDataSize; f.fileSize = int64(pageSize()) + MinDataSize }},
		{"file too small", func(f *forged) { f.fileSize = 100 }},
		{"ring not write-sealed", func(f *forged) { f.seals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW }},
		{"ring may shrink", func(f *forged) { f.seals = producerSeals &^ unix.F_SEAL_SHRINK }},
		{"consumer page may shrink", func(f *forged) { f.consSeals = unix.F_SEAL_GROW }},
		{"consumer past producer", func(f *forged) { f.prod, f.cons = 64, 72 }},
		{"consumer unaligned", func(f *forged) { f.prod, f.cons = 64, 3 }},
		{"more than a ring pending", func(f *forged) { f.prod, f.cons = 2*MinDataSize, 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := goodForge()
			tc.edit(&f)
			pf, cf := f.files(t)
			if c, err := Open(pf, cf, ConsumerOptions{}); !errors.Is(err, ErrLayout) {
				if c != nil {
					_ = c.Close()
				}
				t.Fatalf("Open = %v, want ErrLayout", err)
			}
		})
	}
	pf, cf := goodForge().files(t)
	c, err := Open(pf, cf, ConsumerOptions{})
	if err != nil {
		t.Fatalf("control: %v", err)
	}
	_ = c.Close()
}

// Whatever the data area and producer position hold, the consumer returns
// records inside the mapping or ErrCorrupt, never panics.
func FuzzConsumerRecords(f *testing.F) {
	f.Add(uint64(16), []byte{8, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add(uint64(8), []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Add(uint64(MinDataSize+8), []byte{0xf8, 0x0f, 0, 0})
	f.Add(uint64(1<<63), []byte{})
	f.Fuzz(func(t *testing.T, prod uint64, data []byte) {
		if len(data) > MinDataSize {
			data = data[:MinDataSize]
		}
		fg := goodForge()
		fg.prod, fg.data = prod&^7, data
		pf, cf := fg.files(t)
		c, err := Open(pf, cf, ConsumerOptions{})
		if err != nil {
			return
		}
		defer func() { _ = c.Close() }()
		for range 2 * MinDataSize / RecordHeaderSize {
			rec, ok, err := c.TryNext()
			if err != nil || !ok {
				if err != nil && !errors.Is(err, ErrCorrupt) {
					t.Fatalf("TryNext: %v", err)
				}
				return
			}
			_ = touch(rec)
			if len(rec) > MinDataSize-RecordHeaderSize {
				t.Fatalf("a %d-byte record in a %d-byte ring", len(rec), MinDataSize)
			}
		}
		t.Fatal("more records than a ring can hold")
	})
}
