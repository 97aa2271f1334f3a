// Package enclave runs a detector plugin with least privilege and bounded
// resources, so that a plugin that fails or is compromised does so alone.
//
// The monitor (Prepare) gives each plugin a private temporary directory and
// a cgroup with its limits, then starts the plugin through a launcher: the
// bulkhead binary itself, run as `bulkhead enclave-exec` (Launch). The
// launcher, still root, joins the cgroup, sets the resource limits, checks
// the plugin binary's SHA-256 on the very file it will execute, restricts
// the filesystem and network with Landlock, sets no_new_privs, clears the
// capability bounding set, drops to the plugin's own uid and gid, installs
// a seccomp filter, and executes the plugin. No protection can be undone by
// the plugin afterwards.
//
// Each protection is used when the kernel has it (Probe) and reported per
// plugin (Enclave.Protections). When the plugin dies, Enclave.Cause says
// whether the enclave killed it: a forbidden system call, or a memory or
// CPU limit.
package enclave
