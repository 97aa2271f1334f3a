package wire

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// Codec is the gRPC codec both sides use. It is protobuf for every message
// and keeps protobuf's wire format for batches too, but moves a batch's
// bytes without copying them: the monitor hands gRPC the buffer the
// FlatEncoder wrote (OutBatch), and the plugin receives into a buffer it reuses
// for the next batch (InBatch). Everything else goes to gRPC's own proto
// codec, so go-plugin's services on the same connection are unaffected.
//
// Measured with BenchmarkDispatch: the protobuf copies, and a fresh
// allocation per received batch with the garbage collection it drove, were
// a third of the goplugin path's CPU.
func Codec() encoding.CodecV2 { return codec{proto: encoding.GetCodecV2(proto.Name)} }

type codec struct{ proto encoding.CodecV2 }

// Name is "proto": the bytes on the wire are protobuf, so a peer with the
// plain proto codec reads them too.
func (codec) Name() string { return proto.Name }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	if b, ok := v.(*OutBatch); ok {
		return b.marshal(), nil
	}
	return c.proto.Marshal(v)
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	switch m := v.(type) {
	case *InBatch:
		return m.unmarshal(data)
	case *InResult:
		m.Raw = data.Materialize()
		return nil
	}
	return c.proto.Unmarshal(data, v)
}

// InResult is a Result as the monitor receives it: its bytes, not yet
// parsed, so that ParseResult can read them against the limits and the
// batch they answer without materialising what it refuses. Its size is
// bounded by the connection's receive limit (DialOptions).
type InResult struct {
	Raw []byte
}

// ProcessRaw is Detector.Process, answered as an InResult.
func ProcessRaw(ctx context.Context, cc grpc.ClientConnInterface, b *Batch) (*InResult, error) {
	out := &InResult{}
	if err := cc.Invoke(ctx, Detector_Process_FullMethodName, b, out); err != nil {
		return nil, err
	}
	return out, nil
}

// OutBatch is a Batch on its way out. Its events are a buffer from
// FlatEncoder.Finish; Marshal passes one reference on it to gRPC, which frees
// it once the bytes are on the socket.
type OutBatch struct {
	Seq    uint64
	Count  uint32
	Events mem.Buffer
}

func (b *OutBatch) marshal() mem.BufferSlice {
	n := b.Events.Len()
	hdr := make([]byte, 0, 32)
	hdr = protowire.AppendTag(hdr, 1, protowire.VarintType) // seq
	hdr = protowire.AppendVarint(hdr, b.Seq)
	hdr = protowire.AppendTag(hdr, 3, protowire.VarintType) // count
	hdr = protowire.AppendVarint(hdr, uint64(b.Count))
	hdr = protowire.AppendTag(hdr, 2, protowire.BytesType) // events
	hdr = protowire.AppendVarint(hdr, uint64(n))
	return mem.BufferSlice{mem.SliceBuffer(hdr), b.Events}
}

// InBatch is a Batch received into memory it keeps: Events is valid until
// the next RecvMsg into the same InBatch.
type InBatch struct {
	Seq    uint64
	Count  uint32
	Events []byte
	raw    []byte
}

func (b *InBatch) unmarshal(data mem.BufferSlice) error {
	n := data.Len()
	if cap(b.raw) < n {
		b.raw = make([]byte, n, n+n/4)
	}
	b.raw = b.raw[:n]
	data.CopyTo(b.raw)
	b.Seq, b.Count, b.Events = 0, 0, nil
	for rest := b.raw; len(rest) > 0; {
		num, typ, tn := protowire.ConsumeTag(rest)
		if tn < 0 {
			return fmt.Errorf("batch: %w", protowire.ParseError(tn))
		}
		rest = rest[tn:]
		var vn int
		switch {
		case num == 1 && typ == protowire.VarintType:
			b.Seq, vn = protowire.ConsumeVarint(rest)
		case num == 3 && typ == protowire.VarintType:
			var c uint64
			c, vn = protowire.ConsumeVarint(rest)
			b.Count = uint32(c)
		case num == 2 && typ == protowire.BytesType:
			b.Events, vn = protowire.ConsumeBytes(rest)
		default:
			vn = protowire.ConsumeFieldValue(num, typ, rest)
		}
		if vn < 0 {
			return fmt.Errorf("batch field %d: %w", num, protowire.ParseError(vn))
		}
		rest = rest[vn:]
	}
	return nil
}

// bufferPool recycles the encoders' buffers through gRPC.
type bufferPool struct{ pool sync.Pool }

func (p *bufferPool) Get(n int) *[]byte {
	if b, ok := p.pool.Get().(*[]byte); ok && cap(*b) >= n {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, max(n, 64<<10))
	return &b
}

func (p *bufferPool) Put(b *[]byte) { p.pool.Put(b) }
