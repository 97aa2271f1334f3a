// Package sinks writes events and findings out: JSON lines (one object per
// record, for machines), text (one line per record, for people) or OCSF
// findings. Both encode by appending into a reused buffer, so writing
// allocates nothing per event. Every string a process or a plugin controls
// is escaped (escape.go): no record can forge another or put a control
// character on a terminal. An Output survives its writer failing (a full
// disk): it tries again, never leaves half a line, and counts every record
// it could not write.
package sinks
