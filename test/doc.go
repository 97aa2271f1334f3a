// Package test holds bulkhead's end-to-end tests: they build the real
// binary, run it against the real kernel, do real things (exec, open,
// connect, setuid, ptrace …) and check what the monitor reports. They need
// root and skip with the reason otherwise; CI runs them as root.
package test
