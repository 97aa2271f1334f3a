package enrich

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Cgroups maps cgroup v2 ids (what the kernel puts in every event) to paths
// under the cgroup2 mount. On cgroup v2 a cgroup's id is its directory's
// inode number, so a walk of the mount finds any id.
type Cgroups struct {
	root      string
	byID      map[uint64]string
	lastScan  time.Time
	minRescan time.Duration
}

// NewCgroups finds the cgroup2 mount in mountinfo (usually
// /proc/self/mountinfo) and indexes it.
func NewCgroups(mountinfo string) (*Cgroups, error) {
	root, err := cgroup2Mount(mountinfo)
	if err != nil {
		return nil, err
	}
	c := &Cgroups{root: root, byID: make(map[uint64]string), minRescan: time.Second}
	c.scan()
	return c, nil
}

// Path returns the cgroup's path relative to the mount ("/system.slice/…"),
// rescanning at most once a second for ids it has not seen.
func (c *Cgroups) Path(id uint64) string {
	if p, ok := c.byID[id]; ok {
		return p
	}
	if time.Since(c.lastScan) < c.minRescan {
		return ""
	}
	c.scan()
	return c.byID[id]
}

// IDOf returns the id of the cgroup at path (relative to the mount), or 0.
func (c *Cgroups) IDOf(path string) uint64 {
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(c.root, path), &st); err != nil {
		return 0
	}
	c.byID[st.Ino] = path
	return st.Ino
}

func (c *Cgroups) scan() {
	c.lastScan = time.Now()
	_ = filepath.WalkDir(c.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			rel := strings.TrimPrefix(p, c.root)
			if rel == "" {
				rel = "/"
			}
			c.byID[st.Ino] = rel
		}
		return nil
	})
}

func cgroup2Mount(mountinfo string) (string, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return "", fmt.Errorf("find the cgroup2 mount: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent maj:min root mountpoint options ... - fstype source superopts
		fields := strings.Fields(sc.Text())
		for i, fld := range fields {
			if fld == "-" && i+1 < len(fields) && fields[i+1] == "cgroup2" && len(fields) > 4 {
				return fields[4], nil
			}
		}
	}
	return "", fmt.Errorf("find the cgroup2 mount: no cgroup2 filesystem in %s; container ids will be empty", mountinfo)
}

// ContainerID extracts a container id from a cgroup path as Docker,
// containerd, CRI-O, Podman and Kubernetes lay them out: the last run of 64
// hex digits ("…/docker-<id>.scope", "…/cri-containerd-<id>.scope",
// "/docker/<id>"). Podman's conmon cgroups are not containers.
func ContainerID(path string) string {
	var id string
	for _, comp := range strings.Split(path, "/") {
		if strings.Contains(comp, "conmon") {
			continue
		}
		run := 0
		for i := 0; i <= len(comp); i++ {
			if i < len(comp) && isHex(comp[i]) {
				run++
				continue
			}
			if run == 64 {
				id = comp[i-64 : i]
			}
			run = 0
		}
	}
	return id
}

func isHex(b byte) bool {
	return b >= '0' && b <= '9' || b >= 'a' && b <= 'f'
}
