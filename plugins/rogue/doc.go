// Package rogue is a TEST plugin that breaks the plugin protocol on
// command, to show what the monitor does with a hostile plugin's answers.
// It does not use the SDK: it speaks the wire protocol itself, so it can
// send what the SDK never would. Never run it on a host you care about.
//
// An open event whose path contains `on` triggers the configured attack
// (every time); opens whose path contains `report_on` are reported as
// rogue-report findings (summary and fields carry the path's bytes), so a
// test sees what was delivered. With `path_prefix`, only opens under it
// are sent to the plugin. Attacks:
//
//	flood-findings       `count` findings (default 1,000,000) for the event,
//	                     a one-letter rule and the event: 7 bytes each, 7 MB in all
//	huge-summary         a finding whose summary is `size` bytes (default 50 MiB)
//	huge-fields          a finding whose fields are `size` bytes of JSON (default 1 MiB)
//	bad-severity         a finding with severity 99
//	fabricated-evidence  a finding whose evidence is an event the monitor
//	                     never sent (an exec of /bin/fabricated by pid 1),
//	                     and one that points past the end of the batch
//	bad-counters         a result claiming 4,000,000,000 errors, with a last
//	                     error of 1 MiB full of terminal escapes
//	out-of-order         an answer to a batch that was not sent
//	garbage              an answer that is not protobuf
//	stderr-flood         `count` log lines (default 200,000) to stderr, with
//	                     terminal escapes, a 1 MiB line and the line
//	                     {"@message":1} that go-plugin's parser panics on
//	slow                 every batch takes `delay` (default 1.9s); no trigger needed
//	hang                 never answer
//	ignore-close         never answer Close, nor go-plugin's Shutdown
//	ignore-shutdown      answer Close, never go-plugin's Shutdown
//	stream-error         end the stream with an error status of `size`
//	                     bytes (default 32 KiB) of C1 controls, DEL and escapes
//	stderr-wide          `count` log lines (default 120), 40 a second, each
//	                     with 16 fields of 1 KiB
//
// With transport shm (wire.ShmEnv set), batches come through the monitor's
// ring, which the rogue opens itself, and the ring attacks apply:
//
//	ring-consumer-past   a consumer position past what the monitor produced
//	ring-backwards       acknowledge the trigger, then, on the next batch,
//	                     a consumer position back to 0
//	ring-write           try to map the ring writable, write, truncate, grow
//	                     and seal its memfds (a notice says what was refused,
//	                     or ALLOWED), then write through its read-only mapping
//	                     (the plugin dies of a fault)
//	ring-answered-past   an answered count larger than the batches sent
//	ring-stall           stop reading the ring (and answering), and live on
//
// Start attacks come before Init, so they are chosen by the binary's name
// (StartName: bulkhead-plugin-rogue@ATTACK[@ARG], a hard link to the
// binary); with BULKHEAD_ROGUE_ARM in the environment, only while the file
// it names exists:
//
//	dial-tcp ADDR        a handshake line naming TCP address ADDR
//	dial-dns             one naming a TCP host whose name carries data
//	                     (a DNS lookup would leak it)
//	dial-unix PATH       one naming the UNIX socket PATH
//	dial-symlink PATH    one naming a symbolic link, in the plugin's TMPDIR,
//	                     to PATH
//	broker-flood         400,000 messages on go-plugin's broker stream, if
//	                     the monitor opens it (it says so on stderr)
//	stdio-flood          400,000 messages of 16 KiB of escapes on go-plugin's
//	                     stdio stream, if the monitor opens it
//	huge-definition      a definition of 2 MiB (its description)
package rogue
