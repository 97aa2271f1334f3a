package wire

import "google.golang.org/grpc/mem"

// batchCopies recycles the buffers of CopyBatch.
var batchCopies bufferPool

// CopyBatch returns a copy of an encoded batch in a pooled buffer, with
// one reference, as FlatEncoder.Finish does: for a batch encoded once for
// several detectors (the dispatcher's) that waits in flight or goes on
// the stream. Unlike gRPC's default pool, whose buffers are zeroed whole
// on every Get (64 KiB or 1 MiB for a batch), nothing is cleared: every
// byte is overwritten by the copy.
func CopyBatch(b []byte) mem.Buffer {
	buf := batchCopies.Get(len(b))
	copy(*buf, b)
	return mem.NewBuffer(buf, &batchCopies)
}
