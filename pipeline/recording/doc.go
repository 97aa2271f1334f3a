// Package recording writes and reads bulkhead recordings: the decoded,
// enriched event stream of a monitor, kept in a file so the same events
// can go through the pipeline and detectors again (`bulkhead record`,
// `bulkhead replay`).
//
// A recording is a header and a sequence of frames:
//
//	file    = magic:8 header-len:u32 header:JSON frame* trailer
//	frame   = compressed-len:u32 raw-len:u32 events:u32 crc32c:u32 zstd(batch)
//	trailer = 0xffffffff:u32 0:u32 0:u32 0:u32 total-events:u64
//
// All integers are little-endian. A frame's batch is the plugin wire
// codec's encoding (package backends/goplugin/wire): each event with its
// process context. The header names the container format and the codec's
// schema version; a reader refuses a newer one of either. A file that ends
// without its trailer, or whose frame fails its checksum or does not
// decode, is read up to the damage, and the error says where it is.
package recording
