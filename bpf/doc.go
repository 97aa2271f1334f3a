// Package bpf holds bulkhead's kernel programs and the code that loads them.
//
// The C sources (bulkhead.c, events.h) are compiled by bpf2go into
// bulkhead_x86_bpfel.{go,o}, which are committed: `go build` needs no clang,
// `make generate` rebuilds them. LoadSpec parses the embedded ELF and needs no
// privileges, so tests can inspect programs and maps anywhere; Load creates
// the kernel objects and Attach hooks them up, both of which need root.
package bpf
