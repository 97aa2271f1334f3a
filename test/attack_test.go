package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/test/attack"
	"github.com/bulkhead-sec/bulkhead/test/testenv"
)

// The ATT&CK corpus (test/attack) under the real monitor, with the shipped
// detector set (configs/detectors.yaml) on both backends at once: every
// procedure is performed for real and must cause the findings it states,
// from the inproc and the goplugin instance of each detector. Procedures
// that wait for a capture kind run too, and only show in the table. Run
// with -v for the coverage table; BULKHEAD_CORPUS_TABLE=FILE also writes
// it to FILE (docs/detectors.md holds one).
func TestAttackCorpus(t *testing.T) {
	testenv.RequireBPF(t)
	names := shippedDetectorNames(t)
	cfg := bothBackendsConfig(t, names)
	attackDir, err := filepath.Abs("attack")
	if err != nil {
		t.Fatal(err)
	}
	// Scripts live outside world-writable directories: running one from
	// /tmp is what the procedures do on purpose, not the runner.
	os.MkdirAll("../.testbin", 0o755)
	scripts, err := os.MkdirTemp("../.testbin", "attack-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(scripts) })
	if scripts, err = filepath.Abs(scripts); err != nil {
		t.Fatal(err)
	}
	os.Chmod(scripts, 0o755)
	cgroup2 := cgroup2Mount(t)

	// Everything a procedure starts from is prepared before the monitor
	// runs, so that setting it up is not seen as an attack.
	type prepared struct {
		attack.Procedure
		cmd  *exec.Cmd
		skip string
	}
	var procs []*prepared
	for i, p := range attack.Corpus {
		pp := &prepared{Procedure: p}
		procs = append(procs, pp)
		if p.Skip != nil {
			if pp.skip = p.Skip(); pp.skip != "" {
				continue
			}
		}
		for _, c := range p.Creates {
			if _, err := os.Lstat(c); os.IsNotExist(err) {
				c := c
				t.Cleanup(func() { removeIfEmpty(c) })
			}
		}
		for _, g := range p.Globs {
			g := g
			t.Cleanup(func() {
				matches, _ := filepath.Glob(g)
				for _, m := range matches {
					os.RemoveAll(m)
				}
			})
		}
		work, err := os.MkdirTemp(scripts, "w-")
		if err != nil {
			t.Fatal(err)
		}
		os.Chmod(work, 0o755)
		home := ""
		if strings.Contains(p.Script, "$H") {
			home = fakeHome(t)
		}
		body := attack.Prelude
		if p.NetNS {
			body += attack.NetNSPrelude
		}
		cg := ""
		if p.Container {
			cg = containerCgroup(t, cgroup2, i)
			body += attack.ContainerPrelude
		}
		file := filepath.Join(scripts, fmt.Sprintf("%02d.sh", i))
		if err := os.WriteFile(file, []byte(body+p.Script+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		args := []string{"/bin/sh", file}
		if p.NetNS {
			args = append([]string{"/usr/bin/unshare", "-n"}, args...)
		}
		pp.cmd = exec.Command(args[0], args[1:]...)
		pp.cmd.Dir = work
		pp.cmd.Env = append(os.Environ(), "D="+scratch(t, ""), "V="+scratch(t, "/var/tmp"), "S="+scratch(t, "/dev/shm"),
			"W="+work, "H="+home, "A="+attackDir, fmt.Sprintf("N=%d-%d", os.Getpid(), i), "CG="+cg, "CG2="+cgroup2)
	}

	m := startCorpusMonitor(t, writeConfig(t, cfg))
	start := time.Now()
	roots := map[float64]int{}
	for i, p := range procs {
		if p.cmd == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, p.cmd.Path, p.cmd.Args[1:]...)
		cmd.Dir, cmd.Env = p.cmd.Dir, p.cmd.Env
		out, err := cmd.CombinedOutput()
		cancel()
		if cmd.Process != nil {
			roots[float64(cmd.Process.Pid)] = i
		}
		if err != nil {
			t.Errorf("%s %q was not performed: %v\n%s", p.ID, p.Name, err, out)
		}
	}
	ran := time.Since(start)
	time.Sleep(500 * time.Millisecond) // the last batches reach the plugins
	findings := m.stop(t)

	// Attribute each finding to the procedure whose script is the process
	// or one of its ancestors.
	type seen struct{ latency time.Duration }
	got := make([]map[string]map[string]seen, len(procs)) // procedure → backend → detector/rule
	for _, f := range findings {
		ev := firstEvent(f.finding)
		if ev == nil {
			continue
		}
		i, ok := roots[asFloat(ev["pid"])]
		if !ok {
			proc, _ := ev["process"].(map[string]any)
			ancestors, _ := proc["ancestors"].([]any)
			for _, a := range ancestors {
				if a, _ := a.(map[string]any); a != nil {
					if i, ok = roots[asFloat(a["pid"])]; ok {
						break
					}
				}
			}
		}
		if !ok {
			continue
		}
		det, _ := f.finding["detector"].(string)
		rule, _ := f.finding["rule"].(string)
		cut := strings.LastIndexByte(det, '-')
		if cut < 0 {
			continue
		}
		name, backend := det[:cut], det[cut+1:]
		if got[i] == nil {
			got[i] = map[string]map[string]seen{}
		}
		if got[i][backend] == nil {
			got[i][backend] = map[string]seen{}
		}
		key := name + "/" + rule
		var lat time.Duration
		if at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(f.finding["time"])); err == nil {
			lat = f.arrived.Sub(at)
		}
		if old, dup := got[i][backend][key]; !dup || lat < old.latency {
			got[i][backend][key] = seen{lat}
		}
		if tec, _ := f.finding["techniques"].([]any); len(tec) == 0 {
			t.Errorf("%s: a finding without a MITRE technique: %v", key, f.finding)
		}
	}

	var table strings.Builder
	table.WriteString("| technique | procedure | expected | detected by (both backends) | latency inproc / goplugin |\n|---|---|---|---|---|\n")
	runnable, detected, waiting, skipped := 0, 0, 0, 0
	for i, p := range procs {
		expected := strings.Join(p.Expect, ", ")
		switch {
		case p.skip != "":
			skipped++
			fmt.Fprintf(&table, "| %s | %s | %s | not shown on this host: %s | |\n", p.ID, p.Name, expected, p.skip)
			continue
		case p.Needs != "":
			waiting++
			expected = "needs capture of " + p.Needs
		default:
			runnable++
		}
		var by []string
		for key := range got[i]["inproc"] {
			if _, both := got[i]["goplugin"][key]; both {
				by = append(by, key)
			} else {
				by = append(by, key+" (inproc only)")
			}
		}
		for key := range got[i]["goplugin"] {
			if _, both := got[i]["inproc"][key]; !both {
				by = append(by, key+" (goplugin only)")
			}
		}
		sort.Strings(by)
		missing := []string{}
		lat := [2]time.Duration{-1, -1}
		for _, want := range p.Expect {
			for b, backend := range []string{"inproc", "goplugin"} {
				s, ok := got[i][backend][want]
				if !ok {
					missing = append(missing, want+" on "+backend)
					continue
				}
				if lat[b] < 0 || s.latency > lat[b] {
					lat[b] = s.latency // the slowest expected finding
				}
			}
		}
		if p.Needs == "" {
			if len(missing) == 0 {
				detected++
			} else {
				t.Errorf("%s %q: no %s; its findings: %q", p.ID, p.Name, strings.Join(missing, ", "), by)
			}
		}
		latency := ""
		if lat[0] >= 0 && lat[1] >= 0 {
			latency = fmt.Sprintf("%s / %s", lat[0].Round(100*time.Microsecond), lat[1].Round(100*time.Microsecond))
		}
		det := strings.Join(by, ", ")
		if det == "" {
			det = "—"
		}
		fmt.Fprintf(&table, "| %s | %s | %s | %s | %s |\n", p.ID, strings.ReplaceAll(p.Name, "|", "\\|"), expected, det, latency)
	}
	fmt.Fprintf(&table, "\n%d procedures: %d detected as stated on both backends of %d runnable; %d wait for a capture kind; %d not shown on this host. Performed in %s.\n",
		len(procs), detected, runnable, waiting, skipped, ran.Round(time.Second))
	t.Logf("coverage:\n%s", table.String())
	if file := os.Getenv("BULKHEAD_CORPUS_TABLE"); file != "" {
		if err := os.WriteFile(file, []byte(table.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// shippedDetectorNames are the detectors configs/detectors.yaml runs, by
// their plugin binaries' names.
func shippedDetectorNames(t *testing.T) []string {
	t.Helper()
	shipped, err := os.ReadFile("../configs/detectors.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if regexp.MustCompile(`(?m)^\s*config:`).Match(shipped) {
		t.Fatal("configs/detectors.yaml configures a detector: carry its config into bothBackendsConfig")
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^\s*plugin:\s*\.\./bin/bulkhead-plugin-([a-z]+)\s*$`).FindAllStringSubmatch(string(shipped), -1) {
		names = append(names, m[1])
	}
	if len(names) < 9 || !slices.Contains(names, "rules") {
		t.Fatalf("configs/detectors.yaml names %q: expected the library and rules", names)
	}
	return names
}

// bothBackendsConfig runs each detector twice, as NAME-inproc and
// NAME-goplugin.
func bothBackendsConfig(t *testing.T, names []string) string {
	var yaml strings.Builder
	yaml.WriteString("dispatch:\n  batch_size: 256\ndetectors:\n")
	for _, d := range names {
		fmt.Fprintf(&yaml, "  - name: %s-inproc\n    backend: inproc\n    builtin: %s\n", d, d)
		fmt.Fprintf(&yaml, "  - name: %s-goplugin\n    backend: goplugin\n    plugin: %s\n", d, testenv.Plugin(t, d))
	}
	return yaml.String()
}

// cgroup2Mount is where the cgroup2 hierarchy is mounted (/sys/fs/cgroup,
// or /sys/fs/cgroup/unified on a hybrid host).
func cgroup2Mount(t *testing.T) string {
	t.Helper()
	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[2] == "cgroup2" {
			return f[1]
		}
	}
	t.Fatal("no cgroup2 hierarchy: the container and BPF attach procedures need one")
	return ""
}

// containerCgroup makes a cgroup named as Docker names a container's
// (docker-<64 hex>.scope) below the cgroup2 root, before the monitor
// starts so that it knows the cgroup; it is removed when the test ends.
func containerCgroup(t *testing.T, root string, i int) string {
	t.Helper()
	dir := filepath.Join(root, fmt.Sprintf("docker-b0c0%060x.scope", os.Getpid()<<8|i))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Whatever the script left running is moved out first (bounded).
		for try := 0; try < 50; try++ {
			if os.Remove(dir) == nil || os.IsNotExist(os.Remove(dir)) {
				return
			}
			if procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err == nil {
				for _, pid := range strings.Fields(string(procs)) {
					os.WriteFile(filepath.Join(root, "cgroup.procs"), []byte(pid), 0o644)
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Errorf("cgroup %s not removed", dir)
	})
	return dir
}

// fakeHome is a throwaway home directory under /home with the files the
// credential procedures read and the start-up files they change. A
// monitor watching the whole test suite must not take its set-up for the
// attacks, and writing, renaming or linking a file into a home's .ssh,
// .bashrc or .bash_history is one, whatever the name it was written
// under. So the home is built under a neutral directory at the root of
// the filesystem, with neutral names (dot-ssh/staged, renamed to
// dot-ssh/authorized_keys and then dot-ssh to .ssh: no pattern looks
// there), then moved into place whole: a rename of a directory names no
// watched file; it is removed the same way. Where /home is another
// filesystem the files are written in place, and a watching monitor sees
// the set-up.
func fakeHome(t *testing.T) string {
	t.Helper()
	h := scratch(t, "/home")
	files := map[string]string{
		".ssh/id_rsa":          "-----BEGIN OPENSSH PRIVATE KEY-----\nbulkhead corpus, not a key\n-----END OPENSSH PRIVATE KEY-----\n",
		".ssh/authorized_keys": "",
		".aws/credentials":     "[default]\naws_access_key_id = AKIABULKHEADCORPUS\naws_secret_access_key = not-a-secret\n",
		".config/gcloud/application_default_credentials.json": `{"type": "authorized_user", "client_secret": "not-a-secret"}` + "\n",
		".kube/config":     "apiVersion: v1\nkind: Config\nusers: []\n",
		".git-credentials": "https://corpus:not-a-password@git.invalid\n",
		".bash_history":    "mysql -u root --password=not-a-password\n",
		".bashrc":          "# bulkhead corpus\n",
	}
	stage, err := os.MkdirTemp("/", ".bulkhead-stage-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(stage) // gone once renamed; left over if the rename failed
	write := func(root string) {
		for name, body := range files {
			p := filepath.Join(root, "dot-"+name[1:]) // the dot comes last, see below
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			staged := filepath.Join(filepath.Dir(p), "staged")
			if err := os.WriteFile(staged, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(staged, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(stage)
	// The top-level names get their dot last, by renames of directories
	// and of files outside any home: ".config/gcloud/…" is watched
	// wherever it is.
	for _, name := range []string{".ssh", ".aws", ".config", ".kube", ".git-credentials", ".bash_history", ".bashrc"} {
		if err := os.Rename(filepath.Join(stage, "dot-"+name[1:]), filepath.Join(stage, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(stage, 0o755); err != nil {
		t.Fatal(err)
	}
	// os.Rename refuses an existing directory as the target, even empty.
	if err := os.Remove(h); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(stage, h); err != nil {
		t.Logf("fake home built in place (%v): a monitor watching the suite sees its set-up", err)
		if err := os.Mkdir(h, 0o755); err != nil {
			t.Fatal(err)
		}
		write(h)
		for _, name := range []string{".ssh", ".aws", ".config", ".kube", ".git-credentials", ".bash_history", ".bashrc"} {
			if err := os.Rename(filepath.Join(h, "dot-"+name[1:]), filepath.Join(h, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Removed from a neutral name too: deleting a home's .bash_history
	// is clearing it. (Cleanups run last first: this one before
	// scratch's RemoveAll, which then finds nothing.)
	t.Cleanup(func() {
		trash := filepath.Join("/", ".bulkhead-trash-"+filepath.Base(h))
		if os.Rename(h, trash) == nil {
			os.RemoveAll(trash)
		}
	})
	return h
}

// removeIfEmpty removes path if it is an empty file or directory: what a
// procedure created by opening it for appending.
func removeIfEmpty(path string) {
	st, err := os.Lstat(path)
	if err != nil {
		return
	}
	if st.IsDir() {
		os.Remove(path) // fails unless empty
	} else if st.Mode().IsRegular() && st.Size() == 0 {
		os.Remove(path)
	}
}

func asFloat(v any) float64 { f, _ := v.(float64); return f }

// corpusMonitor is `bulkhead run` whose findings are stamped with the time
// they reached the test, for latency.
type corpusMonitor struct {
	cmd    *exec.Cmd
	stderr syncBuffer
	mu     sync.Mutex
	got    []timedFinding
	done   chan struct{}
}

type timedFinding struct {
	arrived time.Time
	finding map[string]any
}

func startCorpusMonitor(t *testing.T, config string) *corpusMonitor {
	t.Helper()
	m := &corpusMonitor{done: make(chan struct{})}
	m.cmd = exec.Command(testenv.Binary(t), "run", "--flush-interval", "2ms", "--config", config)
	m.cmd.Stderr = &m.stderr
	out, err := m.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.cmd.Process.Kill() })
	go m.read(out)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(m.stderr.String(), `"msg":"capturing"`) {
		if time.Now().After(deadline) {
			t.Fatalf("monitor did not start within 30s; stderr:\n%s", m.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return m
}

func (m *corpusMonitor) read(out io.Reader) {
	defer close(m.done)
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		now := time.Now()
		var f map[string]any
		if json.Unmarshal(sc.Bytes(), &f) != nil || f["type"] != "finding" {
			continue
		}
		m.mu.Lock()
		m.got = append(m.got, timedFinding{now, f})
		m.mu.Unlock()
	}
	io.Copy(io.Discard, out)
}

func (m *corpusMonitor) stop(t *testing.T) []timedFinding {
	t.Helper()
	m.cmd.Process.Signal(os.Interrupt)
	<-m.done
	if err := m.cmd.Wait(); err != nil {
		t.Fatalf("monitor exited with %v; stderr:\n%s", err, m.stderr.String())
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.got
}
