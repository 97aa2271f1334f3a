package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/bulkhead-sec/bulkhead"

// layers are the packages that must not depend on what is above them.
var layers = []string{module + "/pipeline", module + "/backends"}

// above are what they must not import, directly or through another
// package.
var above = []string{module + "/plugins", module + "/cmd", module + "/test"}

// targets are the platforms whose build tags change the graph: the
// monitor's (amd64 has files of its own, arm64 other generated ones) and
// wasip1, where the wire format and the SDK's packages build for wasm
// detectors.
var targets = []struct{ goos, goarch string }{
	{"linux", "amd64"},
	{"linux", "arm64"},
	{"wasip1", "wasm"},
}

func TestLayersDoNotImportAbove(t *testing.T) {
	for _, tg := range targets {
		t.Run(tg.goos+"_"+tg.goarch, func(t *testing.T) {
			g, err := load(tg.goos, tg.goarch, patterns(layers))
			if err != nil {
				t.Fatal(err)
			}
			// The graph is the real one, not an empty answer: the layers
			// are there, and the backends' contract comes from below.
			if !slices.Contains(g[module+"/backends"], module+"/pipeline/detection") {
				t.Fatalf("go list gave no import of pipeline/detection by backends (%d packages): the graph is not read", len(g))
			}
			roots := 0
			for _, p := range slices.Sorted(maps.Keys(g)) {
				if !under(p, layers) {
					continue
				}
				roots++
				if chain := reach(g, p, func(q string) bool { return under(q, above) }); chain != nil {
					t.Errorf("%s imports %s, above it: %s", p, chain[len(chain)-1], strings.Join(chain, " -> "))
				}
			}
			if roots < len(layers) {
				t.Fatalf("only %d packages under %v", roots, layers)
			}
		})
	}
}

// The check finds an import however deep, and names the way to it.
func TestReachNamesTheChain(t *testing.T) {
	g := graph{
		"a/pipeline/x":         {"fmt", "a/pipeline/y"},
		"a/pipeline/y":         {"a/backends/z"},
		"a/backends/z":         {"a/plugins/sdk/detect", "a/pipeline/x"}, // a cycle too
		"a/plugins/sdk/detect": {},
		"a/pipeline/w":         {"a/pipeline/detection"},
	}
	bad := func(q string) bool { return under(q, []string{"a/plugins"}) }
	want := []string{"a/pipeline/x", "a/pipeline/y", "a/backends/z", "a/plugins/sdk/detect"}
	if got := reach(g, "a/pipeline/x", bad); !slices.Equal(got, want) {
		t.Errorf("chain %v, want %v", got, want)
	}
	if got := reach(g, "a/pipeline/w", bad); got != nil {
		t.Errorf("chain %v from a package that imports nothing above it", got)
	}
	if under("a/pluginsx", []string{"a/plugins"}) || !under("a/plugins", []string{"a/plugins"}) {
		t.Error("under matches by path element, not by string prefix")
	}
}

// graph maps a package to its non-test imports.
type graph map[string][]string

func patterns(dirs []string) []string {
	var out []string
	for _, d := range dirs {
		out = append(out, d+"/...")
	}
	return out
}

// load reads the non-test import graph of the packages matching patterns
// and all they depend on, as built for goos/goarch.
func load(goos, goarch string, patterns []string) (graph, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(gobin, append([]string{"list", "-e", "-deps", "-json=ImportPath,Imports,Error"}, patterns...)...)
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list for %s/%s: %v\n%s", goos, goarch, err, stderr.Bytes())
	}
	g := graph{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			ImportPath string
			Imports    []string
			Error      *struct{ Err string }
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list for %s/%s: %w", goos, goarch, err)
		}
		// A package with no files for this platform imports nothing
		// here; any other error may hide imports.
		if p.Error != nil && !strings.Contains(p.Error.Err, "build constraints exclude all Go files") {
			return nil, fmt.Errorf("go list for %s/%s: %s: %s", goos, goarch, p.ImportPath, p.Error.Err)
		}
		g[p.ImportPath] = p.Imports
	}
	return g, nil
}

// reach returns the shortest import chain from p to a package bad
// reports, p first, or nil if there is none.
func reach(g graph, p string, bad func(string) bool) []string {
	from := map[string]string{p: ""}
	for queue := []string{p}; len(queue) > 0; queue = queue[1:] {
		q := queue[0]
		if bad(q) {
			var chain []string
			for ; q != ""; q = from[q] {
				chain = append(chain, q)
			}
			slices.Reverse(chain)
			return chain
		}
		for _, i := range g[q] {
			if _, seen := from[i]; !seen {
				from[i] = q
				queue = append(queue, i)
			}
		}
	}
	return nil
}

// under reports whether p is one of dirs or inside one.
func under(p string, dirs []string) bool {
	for _, d := range dirs {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}
