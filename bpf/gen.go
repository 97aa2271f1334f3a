package bpf

// Regenerate with `make generate` (needs clang-19, llvm-19 and libbpf-dev).
// The generated bulkhead_x86_bpfel.{go,o} are committed so that `go build`
// needs no C toolchain.
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target amd64 -cflags "-O2 -g -Wall -Werror -mcpu=v3" -type event_header -type exec_event -type fork_event -type exit_event -type open_event -type connect_event -type setid_event -type ptrace_event -type module_event -type bpf_prog_event -type memfd_event -type file_event -type namespace_event -type signal_event -type socket_event -type sys_event -type event_counters -type thread_state -type str_ref -type event_kind -type event_flag -type syscall_what -type dir_done -type exec_script bulkhead bulkhead.c -- -I./headers/x86
