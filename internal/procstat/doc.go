// Package procstat reads what the kernel accounts to a process: CPU time
// (this process, or another by pid) and the sizes in /proc/self/status.
// Benchmarks and the bench command use it to report CPU per event and
// memory.
package procstat
