// Package webshell reports a shell started under a network-facing service
// (web server, database, application server): the usual result of a web
// shell, a command injection or a deserialisation exploit
// (MITRE ATT&CK T1059.004, T1505.003).
//
// A service is recognised by the binary or command name of the new shell's
// parent or any ancestor. Language runtimes are recognised by their server's
// command name (gunicorn, uvicorn, puma …), not by their sockets: bulkhead
// does not capture listen() yet, so a bare "node" or "java" is not assumed
// to serve HTTP. Add such names to services when they do on your hosts.
package webshell

import (
	"context"
	"fmt"

	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/match"
	"go.uber.org/zap"
)

// Config is the detector's configuration.
type Config struct {
	match.AllowConfig
	// Services are added to DefaultServices: binaries or command names
	// (patterns) of network-facing services.
	Services []string `json:"services"`
	// Shells are added to DefaultShells.
	Shells []string `json:"shells"`
}

// DefaultServices are network-facing services that have no business
// starting a shell.
var DefaultServices = []string{
	// web servers and proxies
	"nginx", "apache2", "httpd", "lighttpd", "caddy", "traefik", "haproxy", "envoy",
	// application servers and language servers of HTTP
	"php-fpm*", "php-cgi*", "uwsgi", "gunicorn", "uvicorn", "hypercorn", "daphne", "puma", "unicorn",
	"passenger*", "catalina*", "tomcat*", "jetty*", "node-red",
	// databases and caches
	"mysqld", "mariadbd", "postgres", "redis-server", "mongod", "memcached", "elasticsearch", "couchdb",
}

// DefaultShells are the shells reported.
var DefaultShells = []string{"sh", "bash", "dash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish", "ash", "busybox"}

// DefaultAllow trusts nothing by default: services that legitimately run
// shells (postgres's archive_command, for one) should be allowed by
// arguments on the hosts that use them.
var DefaultAllow = match.Allowlist{}

// Detector is the detector.
type Detector struct {
	services, shells []string
	allow            match.Allowlist
}

// New returns the detector; Init configures it.
func New() *Detector { return &Detector{} }

func (d *Detector) Definition() sdk.Definition {
	return sdk.Definition{Name: "webshell", Version: "1.0.0",
		Description: "a shell started under a network-facing service (T1059.004)",
		Kinds:       []sdk.Kind{sdk.KindExec}}
}

func (d *Detector) Init(_ context.Context, cfg sdk.Config, log *zap.Logger) error {
	var c Config
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	if err := match.CheckPatterns("services", c.Services); err != nil {
		return err
	}
	if err := match.CheckPatterns("shells", c.Shells); err != nil {
		return err
	}
	allow, err := c.Build(DefaultAllow)
	if err != nil {
		return err
	}
	d.services = append(append([]string(nil), DefaultServices...), c.Services...)
	d.shells = append(append([]string(nil), DefaultShells...), c.Shells...)
	d.allow = allow
	log.Debug("configured", zap.Int("services", len(d.services)), zap.Int("allow_rules", len(allow)))
	return nil
}

func (d *Detector) OnEvent(_ context.Context, ev *sdk.Event) ([]sdk.Finding, error) {
	if !match.AnyPath(d.shells, ev.Exec.Exe) || ev.Process == nil {
		return nil, nil
	}
	service, depth, viaShell := d.service(ev.Process)
	if service == nil || viaShell || d.allow.Allows(ev) {
		return nil, nil
	}
	f := sdk.NewFinding(ev, "shell-from-service", sdk.SeverityHigh,
		fmt.Sprintf("%s started by network-facing service %s (pid %d)", ev.Exec.Exe, service.Exe, service.PID),
		"T1059.004", "T1505.003")
	f.Fields = map[string]any{"shell": ev.Exec.Exe, "argv": ev.Exec.ArgList(), "service": service.Exe,
		"service_pid": service.PID, "service_depth": depth, "uid": ev.UID}
	return []sdk.Finding{f}, nil
}

// service is the nearest ancestor that is a service and how far up it is
// (1 = parent); viaShell is true when a shell sits in between, which was
// reported when it started.
func (d *Detector) service(p *sdk.Process) (service *sdk.Ancestor, depth int, viaShell bool) {
	for i := range p.Ancestors {
		a := &p.Ancestors[i]
		for _, s := range d.services {
			if match.Path(s, a.Exe) || match.Glob(s, a.Comm) {
				return a, i + 1, viaShell
			}
		}
		viaShell = viaShell || match.AnyPath(d.shells, a.Exe)
	}
	return nil, 0, false
}

func (d *Detector) Close(context.Context) error { return nil }
