package privesc

import (
	"fmt"
	"strings"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/match"
)

// The rules on the rarer kinds (file, sys, namespace), which do not take
// part in following credentials:
//
//   - setuid-bit-set (T1548.001): a chmod that sets the setuid or setgid
//     bit, outside package managers, container image unpacking and
//     systemd-tmpfiles (a setgid directory alone is not reported when the
//     kernel says it is one);
//   - userfaultfd-unprivileged (T1068): a non-root process asks for a
//     userfaultfd that may handle kernel faults (no UFFD_USER_MODE_ONLY),
//     the primitive kernel exploits use to stall the kernel mid-copy;
//   - container-escape (T1611): a process in a container mounts, unshares,
//     enters another namespace with setns, or changes its root, other than
//     the container runtime setting the container up.
//
// They have their own allowlists (setuid_allow, userfaultfd_allow,
// container_allow in the configuration), beside DefaultAllow which is the
// system's setuid programs.

// DefaultSetuidAllow set modes as their job.
var DefaultSetuidAllow = append(match.Allowlist{
	{Exe: "systemd-tmpfiles"}, {Exe: "systemd"}, {Exe: "dpkg-statoverride"}, {Exe: "containerd*"}, {Exe: "dockerd"},
	{Exe: "podman"}, {Exe: "buildah"}, {Exe: "buildkitd"}, {Exe: "crio"}, {Exe: "umoci"}, {Exe: "skopeo"},
	{Ancestor: "containerd*"}, {Ancestor: "dockerd"},
}, match.PackageManagers...)

// DefaultUserfaultfdAllow use userfaultfd for live migration and
// checkpointing.
var DefaultUserfaultfdAllow = match.Allowlist{{Exe: "qemu-system-*"}, {Exe: "criu"}, {Exe: "firecracker"}, {Exe: "crosvm"}}

// DefaultContainerAllow are the runtimes that build a container's
// namespaces and mounts from inside it, and an init system run in one.
var DefaultContainerAllow = match.Allowlist{
	{Exe: "runc"}, {Comm: "runc:*"}, {Exe: "*memfd:runc*"}, {Exe: "crun"}, {Exe: "youki"}, {Exe: "conmon"},
	{Exe: "containerd-shim*"}, {Exe: "systemd"}, {Exe: "catatonit"}, {Exe: "tini"}, {Exe: "docker-init"},
}

const ufdUserModeOnly = 1 // UFFD_USER_MODE_ONLY

// hostFSTypes are filesystems whose mount from a container reaches the
// host: its disks, or the cgroup hierarchy whose release_agent runs a
// program on the host.
var hostFSTypes = map[string]bool{"ext2": true, "ext3": true, "ext4": true, "xfs": true, "btrfs": true, "vfat": true,
	"cgroup": true, "cgroup2": true, "debugfs": true, "securityfs": true, "bpf": true, "tracefs": true, "devtmpfs": true}

func (d *Detector) rare(ev *sdk.Event) []sdk.Finding {
	var f sdk.Finding
	switch ev.Kind {
	case event.KindFile:
		fl := &ev.File
		if fl.Op != event.FileChmod || fl.Ret < 0 || fl.Mode&(event.ModeSetuid|event.ModeSetgid) == 0 {
			return nil
		}
		if fl.Mode&event.ModeSetuid == 0 && fl.FileMode&0o170000 == 0o040000 {
			return nil // a setgid directory: its files' group, not a program's rights
		}
		if d.setuidAllow.Allows(ev) {
			return nil
		}
		file := fl.Resolved
		if file == "" {
			file = fl.FilePath
		}
		bits := strings.Join(fl.SpecialBits(), "+")
		sev := sdk.SeverityHigh
		if fl.Mode&event.ModeSetuid == 0 {
			sev = sdk.SeverityMedium
		}
		f = d.finding(ev, "setuid-bit-set", sev,
			fmt.Sprintf("%s (pid %d, uid %d) set %s on %s (mode %#o) with %s", ev.Comm, ev.PID, ev.UID, bits, file, fl.Mode, fl.Syscall), "T1548.001")
		f.Fields["path"], f.Fields["mode"], f.Fields["bits"] = file, fl.Mode, fl.SpecialBits()
	case event.KindSys:
		s := &ev.Sys
		if s.Syscall != "userfaultfd" || ev.EUID == 0 || s.Args[0]&ufdUserModeOnly != 0 || d.ufdAllow.Allows(ev) {
			return nil
		}
		sev, what := sdk.SeverityHigh, "got a userfaultfd"
		if s.Ret < 0 {
			sev, what = sdk.SeverityMedium, fmt.Sprintf("asked for a userfaultfd (refused, errno %d)", -s.Ret)
		}
		f = d.finding(ev, "userfaultfd-unprivileged", sev,
			fmt.Sprintf("%s (pid %d, uid %d) %s that handles kernel faults (flags %#x), a kernel exploit's primitive", ev.Comm, ev.PID, ev.UID, what, s.Args[0]), "T1068")
		f.Fields["flags"], f.Fields["ret"] = s.Args[0], s.Ret
	case event.KindNamespace:
		n := &ev.Namespace
		if ev.Process == nil || ev.Process.ContainerID == "" || n.Syscall == "umount2" || d.containerAllow.Allows(ev) {
			return nil
		}
		sev, what := sdk.SeverityHigh, ""
		switch n.Syscall {
		case "setns":
			sev, what = sdk.SeverityCritical, fmt.Sprintf("entered namespace %s with setns", n.NsFile)
		case "mount":
			what = fmt.Sprintf("mounted %s (%s) on %s", n.Source, n.FSType, n.Target)
			if hostFSTypes[n.FSType] || strings.HasPrefix(n.Source, "/dev/") {
				sev = sdk.SeverityCritical
			}
		case "unshare", "clone", "clone3":
			what = fmt.Sprintf("made new %s namespaces with %s", strings.Join(n.Namespaces(), ", "), n.Syscall)
		default:
			what = fmt.Sprintf("changed its root with %s to %s", n.Syscall, n.Target)
		}
		if n.Ret < 0 {
			sev, what = sdk.SeverityMedium, fmt.Sprintf("tried (errno %d): %s", -n.Ret, what)
		}
		id := ev.Process.ContainerID
		if len(id) > 12 {
			id = id[:12]
		}
		f = d.finding(ev, "container-escape", sev,
			fmt.Sprintf("%s (pid %d, uid %d) in container %s %s", ev.Comm, ev.PID, ev.UID, id, what), "T1611")
		f.Fields["container_id"], f.Fields["syscall"], f.Fields["ret"] = ev.Process.ContainerID, string(n.Syscall), n.Ret
		for k, v := range map[string]string{"ns_file": n.NsFile, "source": n.Source, "target": n.Target, "fstype": n.FSType} {
			if v != "" {
				f.Fields[k] = v
			}
		}
	default:
		return nil
	}
	return []sdk.Finding{f}
}
