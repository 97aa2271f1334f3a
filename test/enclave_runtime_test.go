package test

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/pipeline/recording"
	"github.com/bulkhead-sec/bulkhead/test/testenv"
)

// A monitor that is not root (replay, bench) keeps its plugins' private
// directories in TMPDIR/bulkhead-UID. Another local user who makes that
// directory first (or puts a symbolic link there) must not get the
// victim's monitor to use it: with it, swapping a private directory for
// a link to the victim's home had the next plugin restart empty the
// victim's home. This test makes an attacker (nobody) and a victim (a uid
// with no passwd entry), plants the directory as the attacker for real,
// runs the victim's monitor for real, and checks that it refuses with a
// clear error and that the victim's files survive; then that, with
// nothing planted, the same monitor runs and makes the directories 0700.
func TestRuntimeDirPlantedByAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it runs an attacker and a victim as two other users (uids 65534 and 61234)")
	}
	const attacker, victim = 65534, 61234
	if u, err := user.LookupId(strconv.Itoa(victim)); err == nil {
		t.Skipf("uid %d, meant to be a victim with no account, is user %q here", victim, u.Username)
	}
	bin, plugin := testenv.Binary(t), testenv.Plugin(t, "tmpexec")

	base, err := os.MkdirTemp("", "bulkhead-plant-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	shared := filepath.Join(base, "tmp") // stands for /tmp: sticky, writable by all
	home := filepath.Join(base, "home")  // the victim's
	for _, d := range []struct {
		path string
		mode os.FileMode
		uid  int
	}{{shared, 0o777 | os.ModeSticky, 0}, {home, 0o700, victim}} {
		if err := os.Mkdir(d.path, 0o700); err != nil {
			t.Fatal(err)
		}
		os.Chmod(d.path, d.mode)
		os.Chown(d.path, d.uid, d.uid)
	}
	precious := map[string]string{"thesis.tex": "years of work", ".ssh/id_ed25519": "a key"}
	for name, body := range precious {
		p := filepath.Join(home, name)
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chown(filepath.Dir(p), victim, victim)
		os.Chown(p, victim, victim)
	}
	rec := filepath.Join(base, "empty.rec")
	f, err := os.Create(rec)
	if err != nil {
		t.Fatal(err)
	}
	w, err := recording.NewWriter(f, recording.Header{Created: time.Now().UTC(), Host: "test"})
	if err == nil {
		err = w.Close()
	}
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(rec, 0o644)
	cfg := filepath.Join(base, "bulkhead.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("detectors:\n  - name: tmpexec\n    backend: goplugin\n    plugin: %s\n", plugin)), 0o644); err != nil {
		t.Fatal(err)
	}
	runtime := filepath.Join(shared, fmt.Sprintf("bulkhead-%d", victim))

	as := func(uid int, name string, args ...string) *exec.Cmd {
		cmd := exec.Command(name, args...)
		cmd.Dir = base
		cmd.Env = []string{"TMPDIR=" + shared, "HOME=" + home, "PATH=/usr/bin:/bin"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
		return cmd
	}
	plant := func(t *testing.T, script string) {
		t.Helper()
		if b, err := as(attacker, "/bin/sh", "-c", script).CombinedOutput(); err != nil {
			t.Fatalf("the attacker's %q: %v\n%s", script, err, b)
		}
	}
	monitor := func() (string, error) {
		b, err := as(victim, bin, "replay", rec, "--config", cfg, "--log-level", "info").CombinedOutput()
		return string(b), err
	}
	homeIntact := func(t *testing.T) {
		t.Helper()
		for name, body := range precious {
			if b, err := os.ReadFile(filepath.Join(home, name)); err != nil || string(b) != body {
				t.Errorf("the victim's %s: %q, %v", name, b, err)
			}
		}
		if entries, _ := os.ReadDir(home); len(entries) != len(precious) {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Errorf("the victim's home holds %q: the monitor wrote in it", names)
		}
	}

	for _, tc := range []struct {
		name, script, want string
	}{
		{"planted directory", fmt.Sprintf("umask 0 && mkdir -m 0777 %s %s/plugins", runtime, runtime),
			fmt.Sprintf("run-time directory %s belongs to uid %d, not to this monitor's user (uid %d)", runtime, attacker, victim)},
		{"planted link to the victim's home", fmt.Sprintf("ln -s %s %s", home, runtime),
			fmt.Sprintf("run-time directory %s is a symbolic link, not a directory", runtime)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.RemoveAll(runtime)
			plant(t, tc.script)
			out, err := monitor()
			if err == nil {
				t.Fatalf("the victim's monitor ran in the attacker's directory:\n%s", out)
			}
			if !strings.Contains(out, tc.want) || !strings.Contains(out, "set TMPDIR to a directory of your own") {
				t.Errorf("the error does not say what is wrong and what to do (want %q):\n%s", tc.want, out)
			}
			if entries, _ := os.ReadDir(filepath.Join(runtime, "plugins")); len(entries) != 0 {
				t.Errorf("the monitor made %d private directories in the attacker's plugins/", len(entries))
			}
			homeIntact(t)
			t.Logf("refused: %s", lastLine(out))
		})
	}

	t.Run("nothing planted", func(t *testing.T) {
		os.RemoveAll(runtime)
		out, err := monitor()
		if err != nil {
			t.Fatalf("the victim's monitor failed with nothing planted: %v\n%s", err, out)
		}
		if !strings.Contains(out, `"detector started"`) || !strings.Contains(out, "replayed 0 events") {
			t.Errorf("the plugin did not start:\n%s", out)
		}
		for _, d := range []string{runtime, filepath.Join(runtime, "plugins")} {
			fi, err := os.Lstat(d)
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if !fi.IsDir() || fi.Mode().Perm() != 0o700 || st.Uid != victim {
				t.Errorf("%s: %v owned by %d, want a directory 0700 of uid %d", d, fi.Mode(), st.Uid, victim)
			}
		}
		homeIntact(t)
	})
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
