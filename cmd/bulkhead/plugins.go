package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/bulkhead-sec/bulkhead/backends/goplugin/enclave"
	"github.com/bulkhead-sec/bulkhead/internal/monitor/status"
)

// autoStatus is run's --status default: status.Path of the monitor's pid.
const autoStatus = "auto"

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
		if paths = status.Running(); len(paths) == 0 {
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
	raw, err := status.Read(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no monitor is running with status file %s (start one with bulkhead run --config FILE, or give --status)", path)
	}
	if err != nil {
		return err
	}
	var s status.Monitor
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("status file %s: %w", path, err)
	}
	if syscall.Kill(s.PID, 0) == syscall.ESRCH {
		return fmt.Errorf("the monitor that wrote %s (pid %d) is gone; the file is from %s", path, s.PID, s.Updated.Format(time.RFC3339))
	}
	if asJSON {
		out, err := status.JSON(s)
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
