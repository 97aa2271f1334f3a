// Package enrich keeps a table of the host's processes, fed by fork, exec and
// exit events and seeded from /proc, and attaches to each event its process's
// binary, argv, ancestry (bounded) and cgroup/container. Memory is bounded:
// exited processes are removed, and a cap sweeps out any whose exit was
// missed.
package enrich
