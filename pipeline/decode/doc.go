// Package decode turns the kernel's fixed-layout ring-buffer records into
// typed events, without reflection and without allocating: the fixed part is
// copied into the bpf2go-generated record type, strings borrow from the
// record. Malformed records are counted by reason and skipped; Decode never
// panics on any input (see the fuzz test).
package decode
