package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/bulkhead-sec/bulkhead/backends/goplugin/enclave"
	"github.com/bulkhead-sec/bulkhead/pipeline/dispatch"
	"github.com/bulkhead-sec/bulkhead/pipeline/sinks"
	"go.uber.org/zap"
)

// statusPathFor is where the monitor of pid says how its detectors are,
// by default: one file per monitor, which `bulkhead plugins` finds.
func statusPathFor(pid int) string {
	return filepath.Join(enclave.RuntimeDir(), fmt.Sprintf("status-%d.json", pid))
}

// autoStatus is run's --status default: statusPathFor the monitor.
const autoStatus = "auto"

// runningStatusFiles are the default status files of monitors that run.
func runningStatusFiles() []string {
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

// status is the status file.
type status struct {
	PID       int              `json:"pid"`
	Updated   time.Time        `json:"updated"`
	Detectors []detectorStatus `json:"detectors"`
}

type detectorStatus struct {
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

func statusOf(lanes []dispatch.LaneStats) status {
	s := status{PID: os.Getpid(), Updated: time.Now().UTC()}
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
		s.Detectors = append(s.Detectors, detectorStatus{Name: l.Name, Backend: l.Backend, State: state, PID: b.PID,
			Restarts: b.Restarts, Crashes: b.Crashes, Hangs: b.Hangs, EnclaveKills: b.Violations + b.LimitKills, Violations: b.Violations,
			ProtocolViolations: b.ProtocolViolations, FindingsRefused: b.FindingsRefused, LogLinesDropped: b.LogLinesDropped,
			Delivered: b.Delivered, Dropped: l.Dropped(), Protections: l.Protections})
	}
	return s
}

// writeStatus replaces the status file atomically.
func writeStatus(path string, s status) error {
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

// readStatus reads the status file at path: a regular file of this user
// or of root that no one else can write, in, for the default path, a
// run-time directory that is really this user's (a monitor that is not
// root keeps it in /tmp, where another user could plant one to show the
// operator a monitor in good health). At most maxStatusBytes.
func readStatus(path string) ([]byte, error) {
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
	raw, err := io.ReadAll(io.LimitReader(f, maxStatusBytes+1))
	if err == nil && len(raw) > maxStatusBytes {
		err = fmt.Errorf("status file %s is more than %d bytes: not one a monitor wrote", path, maxStatusBytes)
	}
	return raw, err
}

// maxStatusBytes bounds the status file: a monitor's, with 64 plugins
// and their protections, is a few tens of KiB.
const maxStatusBytes = 8 << 20

// statusJSON is s as indented JSON for a terminal: encoding/json escapes
// C0 controls but leaves DEL, C1 controls (U+009B is a CSI) and the other
// characters that are not printable raw; they are written as \uXXXX.
// (The same post-processing as sinks' OCSF output, which does not export
// it.) Only what status holds is written, re-encoded: nothing else of the
// file, and no byte that is not UTF-8.
func statusJSON(s status) ([]byte, error) {
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	// What encoding/json leaves raw (DEL, C1 controls) must not reach a
	// terminal either.
	return append(sinks.AppendSanitizedJSON(nil, raw), '\n'), nil
}

// keepStatus writes the status of the detectors lanes returns every
// second until stop closes, then removes the file.
func keepStatus(path string, lanes func() []dispatch.LaneStats, log *zap.Logger, stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	warned := false
	for {
		if err := writeStatus(path, statusOf(lanes())); err != nil && !warned {
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

// pluginsCommand is `bulkhead plugins`: the running monitors' detectors,
// their state, restarts and protections.
func pluginsCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plugins", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("status", "", "the status `file` of one monitor (bulkhead run --status); default: every running monitor's, in "+enclave.RuntimeDir())
	asJSON := fs.Bool("json", false, "print the status as JSON")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: bulkhead plugins [--json] [--status FILE]\n\nThe running monitors' detectors: state, pid, restarts, crashes, hangs, enclave kills,\nprotocol violations, events delivered and dropped, and each one's protections.\n\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	paths := []string{*path}
	if *path == "" {
		if paths = runningStatusFiles(); len(paths) == 0 {
			return fmt.Errorf("no monitor is running: no status file of a live monitor in %s (start one with bulkhead run --config FILE, or give --status)", enclave.RuntimeDir())
		}
	}
	for i, p := range paths {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		if err := showStatus(p, *asJSON, stdout); err != nil {
			return err
		}
	}
	return nil
}

// showStatus prints the status file at path.
func showStatus(path string, asJSON bool, stdout io.Writer) error {
	raw, err := readStatus(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no monitor is running with status file %s (start one with bulkhead run --config FILE, or give --status)", path)
	}
	if err != nil {
		return err
	}
	var s status
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("status file %s: %w", path, err)
	}
	if syscall.Kill(s.PID, 0) == syscall.ESRCH {
		return fmt.Errorf("the monitor that wrote %s (pid %d) is gone; the file is from %s", path, s.PID, s.Updated.Format(time.RFC3339))
	}
	if asJSON {
		out, err := statusJSON(s)
		if err != nil {
			return err
		}
		_, err = stdout.Write(out)
		return err
	}
	fmt.Fprintf(stdout, "monitor pid %d, as of %s\n\n", s.PID, s.Updated.Local().Format("15:04:05"))
	fmt.Fprintf(stdout, "%-16s %-22s %-13s %8s %8s %8s %6s %8s %9s %12s %9s\n", "NAME", "BACKEND", "STATE", "PID", "RESTARTS", "CRASHES", "HANGS", "ENCLAVE", "PROTOCOL", "DELIVERED", "DROPPED")
	for _, d := range s.Detectors {
		fmt.Fprintf(stdout, "%-16s %-22s %-13s %8d %8d %8d %6d %8d %9d %12d %9d\n", plain(d.Name, 16), plain(d.Backend, 22), plain(d.State, 13), d.PID, d.Restarts, d.Crashes, d.Hangs, d.EnclaveKills, d.ProtocolViolations, d.Delivered, d.Dropped)
	}
	for _, d := range s.Detectors {
		if d.ProtocolViolations+d.FindingsRefused+d.LogLinesDropped > 0 {
			fmt.Fprintf(stdout, "\n%s broke the plugin protocol %d times: %d findings refused, %d log lines dropped\n",
				plain(d.Name, 64), d.ProtocolViolations, d.FindingsRefused, d.LogLinesDropped)
		}
	}
	for _, d := range s.Detectors {
		if len(d.Protections) == 0 {
			continue
		}
		protections := make([]string, len(d.Protections))
		for i, p := range d.Protections {
			protections[i] = plain(p, 1024)
		}
		fmt.Fprintf(stdout, "\n%s:\n  %s\n", plain(d.Name, 64), strings.Join(protections, "\n  "))
	}
	return nil
}

// plain is s for the terminal: Go-quoted if it has anything but printable
// characters (the status file is only as trustworthy as its directory),
// and cut to n bytes.
func plain(s string, n int) string {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			s = strconv.Quote(s)
			break
		}
	}
	if len(s) > n {
		s = s[:n]
	}
	return s
}
