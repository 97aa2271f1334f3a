package bpf

// CheckPrivileges says, before anything else starts, whether this process
// may load BPF programs: root, or CAP_BPF with CAP_PERFMON (or
// CAP_SYS_ADMIN). The error says what to do.
func CheckPrivileges() error { return checkCapabilities() }
