// Package export sends findings (and, when asked, events) beyond the
// host: to NATS JetStream, through a bounded write-ahead spool on local
// disk, so that nothing is lost while the server is away, slow, or the
// monitor restarts.
//
// Every record is appended to the spool (spool.go) before it is
// published; a sender publishes the spool in order with at most Window
// publishes awaiting their acknowledgement, and moves the spool's cursor
// over what JetStream acknowledged. On any failure (disconnect, timeout)
// it goes back to the first unacknowledged record and sends again: each
// message carries Nats-Msg-Id (a finding's stable uid, the one OCSF
// output gives), so JetStream's duplicate window drops what it already
// stored. Delivery is at-least-once from the monitor, exactly-once in the
// stream as long as a resend comes within the duplicate window.
//
// Subjects: <prefix>.<host>.findings.<severity> and
// <prefix>.<host>.events.<kind>; bodies are the JSON the file sink writes
// (or OCSF). See docs/export.md.
package export
