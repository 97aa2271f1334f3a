package status

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends/goplugin/enclave"
	"github.com/bulkhead-sec/bulkhead/pipeline/dispatch"
	"github.com/bulkhead-sec/bulkhead/pipeline/sinks"
	"go.uber.org/zap"
)

// Path is where the monitor of pid says how its detectors are,
// by default: one file per monitor, which `bulkhead plugins` finds.
func Path(pid int) string {
	return filepath.Join(enclave.RuntimeDir(), fmt.Sprintf("status-%d.json", pid))
}

// Running are the default status files of monitors that run.
func Running() []string {
	paths, _ := filepath.Glob(filepath.Join(enclave.RuntimeDir(), "status-*.json"))
	var out []string
	for _, p := range paths {
		pid, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), "status-"), ".json"))
		if err == nil && pid > 0 && syscall.Kill(pid, 0) != syscall.ESRCH {
			out = append(out, p)
		}
	}
	return out
}

// Monitor is the status file: a monitor's detectors, as of Updated.
type Monitor struct {
	PID       int        `json:"pid"`
	Updated   time.Time  `json:"updated"`
	Detectors []Detector `json:"detectors"`
}

// Detector is one detector's line of the status.
type Detector struct {
	Name         string `json:"name"`
	Backend      string `json:"backend"`
	State        string `json:"state"` // running, restarting, breaker-open, in-process
	PID          int    `json:"pid,omitempty"`
	Restarts     uint64 `json:"restarts"`
	Crashes      uint64 `json:"crashes"`
	Hangs        uint64 `json:"hangs"`
	EnclaveKills uint64 `json:"enclave_kills"`
	Violations   uint64 `json:"seccomp_kills"`
	// Breaches of the plugin protocol, the findings refused for them, and
	// the plugin's log lines dropped over its rate limit.
	ProtocolViolations uint64   `json:"protocol_violations"`
	FindingsRefused    uint64   `json:"findings_refused"`
	LogLinesDropped    uint64   `json:"log_lines_dropped"`
	Delivered          uint64   `json:"delivered"`
	Dropped            uint64   `json:"dropped"`
	Protections        []string `json:"protections"`
}

// Of is the status of the detectors behind lanes, now.
func Of(lanes []dispatch.LaneStats) Monitor {
	s := Monitor{PID: os.Getpid(), Updated: time.Now().UTC()}
	for _, l := range lanes {
		b := l.Backends
		state := "running"
		switch {
		case l.Backend == "inproc":
			state = "in-process"
		case b.BreakerOpen:
			state = "breaker-open"
		case l.Backend == "wasm":
			state = "in-sandbox" // in the monitor's process: no pid of its own
		case b.PID == 0:
			state = "restarting"
		}
		s.Detectors = append(s.Detectors, Detector{Name: l.Name, Backend: l.Backend, State: state, PID: b.PID,
			Restarts: b.Restarts, Crashes: b.Crashes, Hangs: b.Hangs, EnclaveKills: b.Violations + b.LimitKills, Violations: b.Violations,
			ProtocolViolations: b.ProtocolViolations, FindingsRefused: b.FindingsRefused, LogLinesDropped: b.LogLinesDropped,
			Delivered: b.Delivered, Dropped: l.Dropped(), Protections: l.Protections})
	}
	return s
}

// Write replaces the status file atomically.
func Write(path string, s Monitor) error {
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if filepath.Dir(path) == enclave.RuntimeDir() {
		// The default: made and checked (for a monitor that is not root it
		// is in /tmp, where another user could have made it first).
		if _, err := enclave.EnsureRuntimeDir(); err != nil {
			return err
		}
	} else if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	os.Remove(tmp)
	// A new file, never through a link left in its place.
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(raw)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// Read reads the status file at path: a regular file of this user
// or of root that no one else can write, in, for the default path, a
// run-time directory that is really this user's (a monitor that is not
// root keeps it in /tmp, where another user could plant one to show the
// operator a monitor in good health). At most maxBytes.
func Read(path string) ([]byte, error) {
	if filepath.Dir(path) == enclave.RuntimeDir() {
		if err := enclave.CheckRuntimeDir(); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("status file %s is a symbolic link: refusing to read it (give the file itself with --status)", path)
		}
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("status file %s is not a regular file (%s)", path, fi.Mode().Type())
	case !ok || (int(st.Uid) != os.Geteuid() && st.Uid != 0):
		return nil, fmt.Errorf("status file %s belongs to uid %d, neither this user (uid %d) nor root: another user may have put it there; not reading it", path, st.Uid, os.Geteuid())
	case fi.Mode().Perm()&0o022 != 0:
		return nil, fmt.Errorf("status file %s has mode %04o: others can write it; not reading it", path, uint32(fi.Mode().Perm()))
	}
	raw, err := io.ReadAll(io.LimitReader(f, maxBytes+1))
	if err == nil && len(raw) > maxBytes {
		err = fmt.Errorf("status file %s is more than %d bytes: not one a monitor wrote", path, maxBytes)
	}
	return raw, err
}

// maxBytes bounds the status file: a monitor's, with 64 plugins
// and their protections, is a few tens of KiB.
const maxBytes = 8 << 20

// JSON is s as indented JSON for a terminal: encoding/json escapes
// C0 controls but leaves DEL, C1 controls (U+009B is a CSI) and the other
// characters that are not printable raw; they are written as \uXXXX.
// (The same post-processing as sinks' OCSF output, which does not export
// it.) Only what status holds is written, re-encoded: nothing else of the
// file, and no byte that is not UTF-8.
func JSON(s Monitor) ([]byte, error) {
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	// What encoding/json leaves raw (DEL, C1 controls) must not reach a
	// terminal either.
	return append(sinks.AppendSanitizedJSON(nil, raw), '\n'), nil
}

// Keep writes the status of the detectors lanes returns every
// second until stop closes, then removes the file.
func Keep(path string, lanes func() []dispatch.LaneStats, log *zap.Logger, stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	warned := false
	for {
		if err := Write(path, Of(lanes())); err != nil && !warned {
			log.Warn("cannot write the status file; `bulkhead plugins` will not see this monitor", zap.String("path", path), zap.Error(err))
			warned = true
		}
		select {
		case <-stop:
			os.Remove(path)
			return
		case <-t.C:
		}
	}
}
