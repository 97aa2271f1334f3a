package match

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
)

func openOf(t *testing.T, requested, kernel string, ret int64) *event.Open {
	t.Helper()
	o := &event.Open{Resolved: requested, Ret: ret}
	if ret < 0 {
		return o
	}
	var st syscall.Stat_t
	if err := syscall.Stat(kernel, &st); err != nil {
		t.Fatal(err)
	}
	o.FilePath, o.Dev, o.Ino, o.Nlink, o.FileMode = kernel, st.Dev, st.Ino, uint32(st.Nlink), st.Mode
	return o
}

// A watched file is recognised by the kernel's path, by its identity under
// another name (a hard link), and by the requested path of a failed open;
// a file replaced by rename is known by its new identity, and the old one
// is forgotten.
func TestFilesUnderAnyName(t *testing.T) {
	dir := t.TempDir()
	secret, link := filepath.Join(dir, "secret"), filepath.Join(dir, "elsewhere")
	if err := os.WriteFile(secret, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(secret, link); err != nil {
		t.Fatal(err)
	}
	f := NewFiles(func(p string) int {
		if strings.HasSuffix(p, "/secret") {
			return 0
		}
		return -1
	})
	if missed := f.Stat([]string{secret, filepath.Join(dir, "*")}); len(missed) != 0 || f.Len() != 1 {
		t.Fatalf("missed %v, %d identities", missed, f.Len())
	}
	for _, c := range []struct {
		name     string
		o        *event.Open
		by, path string
	}{
		{"kernel path", openOf(t, secret, secret, 3), ByKernelPath, secret},
		{"hard link", openOf(t, link, link, 3), ByIdentity, secret},
		{"refused", openOf(t, secret, "", -13), ByName, secret},
		{"other file", &event.Open{Resolved: dir + "/other", FilePath: dir + "/other", Ino: 99, Ret: 3}, "", ""},
	} {
		g, path, by := f.Match(c.o)
		if by != c.by || path != c.path || (c.by == "") != (g < 0) {
			t.Errorf("%s: group %d, path %q, by %q; want %q by %q", c.name, g, path, by, c.path, c.by)
		}
	}
	// secret is replaced by rename, as passwd does: opened by its name, the
	// new file is learnt; the hard link now names the old, unwatched file.
	tmp := filepath.Join(dir, "new")
	if err := os.WriteFile(tmp, []byte("y"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, secret); err != nil {
		t.Fatal(err)
	}
	f.Match(openOf(t, secret, secret, 3))
	if _, _, by := f.Match(openOf(t, link, link, 3)); by != "" {
		t.Errorf("the replaced file's old identity is still watched (by %q)", by)
	}
}
