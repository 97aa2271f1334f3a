package enclave

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// A run-time directory is used only when it is a real directory of this
// user that no one else can write: anything another user could have
// planted is refused with what to do.
func TestCheckOwnDir(t *testing.T) {
	for _, tc := range []struct {
		name  string
		make  func(t *testing.T, path string)
		want  string      // in the error; "" for none
		after os.FileMode // the mode once accepted
	}{
		{"own 0700", func(t *testing.T, p string) { mkdirMode(t, p, 0o700) }, "", 0o700},
		{"own 0755 is tightened", func(t *testing.T, p string) { mkdirMode(t, p, 0o755) }, "", 0o700},
		{"own 0777", func(t *testing.T, p string) { mkdirMode(t, p, 0o777) }, "others can write in it", 0},
		{"own 0730", func(t *testing.T, p string) { mkdirMode(t, p, 0o730) }, "others can write in it", 0},
		{"symbolic link to an own 0700 directory", func(t *testing.T, p string) {
			target := p + "-target"
			mkdirMode(t, target, 0o700)
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
		}, "is a symbolic link", 0},
		{"a file", func(t *testing.T, p string) {
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "is not a directory", 0},
		{"another user's", func(t *testing.T, p string) {
			if os.Geteuid() != 0 {
				t.Skip("needs root to give a directory to another user")
			}
			mkdirMode(t, p, 0o700)
			if err := os.Chown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, "belongs to uid 65534, not to this monitor's user", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "bulkhead-run")
			tc.make(t, p)
			err := CheckOwnDir(p, 0o700)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				fi, _ := os.Lstat(p)
				if fi.Mode().Perm() != tc.after {
					t.Errorf("mode %v, want %v", fi.Mode().Perm(), tc.after)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), p) {
				t.Errorf("the error does not name the directory: %v", err)
			}
		})
	}
}

func mkdirMode(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(p, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

// ensureOwnDir makes the directory with exactly the mode asked, whatever
// the umask, and refuses a symbolic link put where it should be.
func TestEnsureOwnDir(t *testing.T) {
	dir := t.TempDir()
	old := syscall.Umask(0o077)
	p := filepath.Join(dir, "run")
	err := ensureOwnDir(p, 0o711)
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Lstat(p); fi.Mode().Perm() != 0o711 {
		t.Errorf("mode %v, want 0711", fi.Mode().Perm())
	}
	victim := filepath.Join(dir, "victim")
	mkdirMode(t, victim, 0o700)
	link := filepath.Join(dir, "link")
	os.Symlink(victim, link)
	if err := ensureOwnDir(link, 0o700); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("a symbolic link was accepted: %v", err)
	}
}

// emptyDir empties a private directory, symbolic links in it included
// (not what they point to), and refuses to empty a symbolic link put in
// the private directory's place: the files it points to survive.
func TestEmptyDirNeverFollowsALink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "home")
	mkdirMode(t, victim, 0o700)
	precious := filepath.Join(victim, "thesis.tex")
	if err := os.WriteFile(precious, []byte("years of work"), 0o600); err != nil {
		t.Fatal(err)
	}
	private := filepath.Join(dir, "plugins", "1-x-1")
	if err := os.MkdirAll(filepath.Join(private, "a", "b"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(private, "a", "b", "f"), []byte("x"), 0o600)
	os.Symlink(victim, filepath.Join(private, "to-home"))
	os.Symlink(victim, filepath.Join(private, "a", "to-home"))
	if err := emptyDir(private); err != nil {
		t.Fatal(err)
	}
	if names, _ := os.ReadDir(private); len(names) != 0 {
		t.Errorf("left %v", names)
	}
	if _, err := os.Stat(precious); err != nil {
		t.Fatalf("a link inside the directory was followed: %v", err)
	}

	// The private directory swapped for a link to the victim's files.
	if err := os.Remove(private); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, private); err != nil {
		t.Fatal(err)
	}
	err := emptyDir(private)
	if err == nil || !strings.Contains(err.Error(), "no longer a directory") {
		t.Errorf("emptyDir on a link: %v", err)
	}
	if _, err := os.Stat(precious); err != nil {
		t.Fatalf("the victim's file is gone: %v", err)
	}
	// Nor does removing the private directory at stop follow it.
	if err := os.RemoveAll(private); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(precious); err != nil {
		t.Fatalf("RemoveAll followed the link: %v", err)
	}
}

// Without Landlock the plugin could write anywhere its uid may: every
// file it writes is bounded by disk_mb all the same (RLIMIT_FSIZE), and
// the protections say Landlock is missing. The limit is applied for real
// in a child process: a write past it fails with EFBIG.
func TestNoLandlockStillBoundsFiles(t *testing.T) {
	if os.Getenv("BULKHEAD_TEST_FSIZE") != "" {
		fileLimitChild()
		return
	}
	h, _, err := Open(Support{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := h.Prepare("nolandlock", 0, Config{DiskMB: 1})
	h.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.spec.FileMB != 1 {
		t.Errorf("RLIMIT_FSIZE %d MiB, want disk_mb 1", e.spec.FileMB)
	}
	if p := strings.Join(e.Protections(), "\n"); !strings.Contains(p, "NO Landlock") || !strings.Contains(p, "at most 1 MiB (RLIMIT_FSIZE)") {
		t.Errorf("protections do not say so:\n%s", p)
	}
	out := filepath.Join(t.TempDir(), "fill")
	cmd := exec.Command(os.Args[0], "-test.run=^TestNoLandlockStillBoundsFiles$")
	cmd.Env = append(os.Environ(), "BULKHEAD_TEST_FSIZE="+out)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, b)
	}
	if !strings.Contains(string(b), "EFBIG after 1048576 bytes") {
		t.Errorf("child said:\n%s", b)
	}
	t.Logf("child: %s", strings.TrimSpace(strings.Split(string(b), "\n")[0]))
}

// fileLimitChild applies the limits of a disk_mb 1 spec to itself and
// writes 2 MiB.
func fileLimitChild() {
	if err := setLimits(spec{OpenFiles: 64, FileMB: 1}); err != nil {
		os.Stdout.WriteString("setLimits: " + err.Error() + "\n")
		os.Exit(1)
	}
	f, err := os.Create(os.Getenv("BULKHEAD_TEST_FSIZE"))
	if err != nil {
		os.Stdout.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
	n, err := f.Write(make([]byte, 2<<20))
	if errors.Is(err, syscall.EFBIG) {
		os.Stdout.WriteString("EFBIG after " + itoa(n) + " bytes\n")
		os.Exit(0)
	}
	os.Stdout.WriteString("wrote " + itoa(n) + " bytes, error " + errString(err) + "\n")
	os.Exit(0)
}

func itoa(n int) string { return strconv.Itoa(n) }

func errString(err error) string {
	if err == nil {
		return "none"
	}
	return err.Error()
}
