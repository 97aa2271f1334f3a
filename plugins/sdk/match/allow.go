package match

import (
	"errors"
	"fmt"
	"strings"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
)

// Rule trusts the processes it matches. Every field that is set must match;
// a rule with no field set is an error.
type Rule struct {
	// Exe matches the process's binary (a bare name matches its last element).
	Exe string `json:"exe,omitempty"`
	// Comm matches the process's command name.
	Comm string `json:"comm,omitempty"`
	// Ancestor matches the binary or command name of any ancestor (parent,
	// grandparent …).
	Ancestor string `json:"ancestor,omitempty"`
	// Args matches the process's argv joined by spaces.
	Args string `json:"args,omitempty"`
}

func (r Rule) String() string {
	var parts []string
	for _, f := range [][2]string{{"exe", r.Exe}, {"comm", r.Comm}, {"ancestor", r.Ancestor}, {"args", r.Args}} {
		if f[1] != "" {
			parts = append(parts, f[0]+"="+f[1])
		}
	}
	return strings.Join(parts, " ")
}

func (r Rule) check() error {
	if r == (Rule{}) {
		return errors.New("an allow rule needs at least one of exe, comm, ancestor, args")
	}
	for _, p := range []string{r.Exe, r.Ancestor} {
		if p != "" {
			if err := CheckPatterns("allow", []string{p}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Matches reports whether the rule matches ev's process.
func (r Rule) Matches(ev *event.Event) bool {
	if r.Exe != "" && !Path(r.Exe, ev.ProcessExe()) {
		return false
	}
	if r.Comm != "" && !Glob(r.Comm, ev.Comm) {
		return false
	}
	if r.Ancestor != "" && !AncestorMatches(ev.Process, r.Ancestor) {
		return false
	}
	if r.Args != "" && !Glob(r.Args, strings.ReplaceAll(strings.TrimSuffix(ev.ProcessArgs(), "\x00"), "\x00", " ")) {
		return false
	}
	return true
}

// AncestorMatches reports whether any of p's ancestors has a binary or
// command name matching pattern.
func AncestorMatches(p *event.Process, pattern string) bool {
	if p == nil {
		return false
	}
	for _, a := range p.Ancestors {
		if Path(pattern, a.Exe) || Glob(pattern, a.Comm) {
			return true
		}
	}
	return false
}

// Allowlist is a set of rules; a process matching any of them is trusted.
type Allowlist []Rule

// Allows reports whether ev's process is trusted.
func (l Allowlist) Allows(ev *event.Event) bool {
	for _, r := range l {
		if r.Matches(ev) {
			return true
		}
	}
	return false
}

// AllowConfig is the allowlist part of a detector's configuration. Embed it
// in the detector's Config struct.
type AllowConfig struct {
	// Allow adds rules to the detector's defaults.
	Allow []Rule `json:"allow"`
	// NoDefaultAllow drops the detector's default rules, leaving only Allow.
	NoDefaultAllow bool `json:"no_default_allow"`
}

// Build checks the configured rules and returns them with the defaults
// (unless NoDefaultAllow).
func (c AllowConfig) Build(defaults Allowlist) (Allowlist, error) {
	var out Allowlist
	if !c.NoDefaultAllow {
		out = append(out, defaults...)
	}
	for i, r := range c.Allow {
		if err := r.check(); err != nil {
			return nil, fmt.Errorf("allow[%d]: %w", i, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// GoToolchain trusts binaries the go command built and runs from its
// temporary directories (go test, go run): on developer hosts they are the
// normal case. Production hosts without a Go toolchain never match it.
var GoToolchain = Rule{Exe: "/tmp/go-build*", Ancestor: "*/bin/go"}

// PackageManagers trusts package managers and everything they run
// (maintainer scripts, debconf, triggers): installing a package writes
// units and cron files and reads the shadow files by design.
var PackageManagers = Allowlist{
	{Exe: "dpkg"}, {Ancestor: "dpkg"}, {Exe: "apt"}, {Ancestor: "apt"}, {Exe: "apt-get"}, {Ancestor: "apt-get"},
	{Ancestor: "aptitude"}, {Ancestor: "unattended-upgr*"}, {Exe: "rpm"}, {Ancestor: "rpm"}, {Ancestor: "dnf"},
	{Ancestor: "yum"}, {Ancestor: "zypper"}, {Ancestor: "apk"},
}
