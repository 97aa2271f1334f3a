package export

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Config is the export: section of the configuration file.
type Config struct {
	// URL of the NATS server(s), comma-separated: nats://host:4222, or
	// tls://host:4222 for TLS.
	URL string `yaml:"url"`
	// Host is this monitor's token in subjects; default the hostname.
	// Characters other than letters, digits, - and _ become _.
	Host string `yaml:"host"`
	// SubjectPrefix starts every subject; default "bulkhead".
	SubjectPrefix string `yaml:"subject_prefix"`
	// Format of a finding: json (as the file sink writes it; the
	// default) or ocsf (OCSF 1.3 Detection Finding).
	Format string `yaml:"format"`
	// Events exports every event too, to <prefix>.<host>.events.<kind>
	// (off by default: events are many).
	Events bool `yaml:"events"`

	Stream StreamConfig `yaml:"stream"`

	// Window is how many publishes may wait for their acknowledgement at
	// once; default 256.
	Window int `yaml:"window"`
	// AckTimeout is how long one acknowledgement is awaited before
	// everything from the first unacknowledged record is sent again;
	// default 5s.
	AckTimeout time.Duration `yaml:"ack_timeout"`
	// DrainTimeout is how long Close waits for the spool to drain; what is
	// left is sent by the next start. Default 5s.
	DrainTimeout time.Duration `yaml:"drain_timeout"`

	TLS TLSConfig `yaml:"tls"`
	// Creds is a NATS credentials file (user JWT and nkey seed).
	Creds string `yaml:"creds"`
	// NKey is a file holding an nkey user seed (SU...).
	NKey string `yaml:"nkey"`

	Spool SpoolConfig `yaml:"spool"`
}

// StreamConfig is the JetStream stream created when it is missing. An
// existing stream is used as it is.
type StreamConfig struct {
	Name string `yaml:"name"` // default BULKHEAD
	// MaxAge: messages older are removed; default 168h (7 days).
	MaxAge time.Duration `yaml:"max_age"`
	// MaxMiB bounds the stream; past it the oldest messages are removed.
	// Default 1024.
	MaxMiB int64 `yaml:"max_mib"`
	// DuplicateWindow: a message whose Nats-Msg-Id was stored within it
	// is dropped as a duplicate; default 10m.
	DuplicateWindow time.Duration `yaml:"duplicate_window"`
	// Replicas in a cluster; default 1.
	Replicas int `yaml:"replicas"`
}

// TLSConfig is the client's TLS: a CA to verify the server and a client
// certificate for mutual TLS.
type TLSConfig struct {
	CA         string `yaml:"ca"`
	Cert       string `yaml:"cert"`
	Key        string `yaml:"key"`
	ServerName string `yaml:"server_name"`
}

// SpoolConfig is the local spool.
type SpoolConfig struct {
	Dir       string        `yaml:"dir"`     // default DefaultSpoolBase()/<host>
	MaxMiB    int64         `yaml:"max_mib"` // default 256
	Sync      SyncPolicy    `yaml:"sync"`    // always | interval (default) | never
	SyncEvery time.Duration `yaml:"sync_interval"`
}

// DefaultSpoolBase holds a spool per host id unless spool: dir: is set:
// /var/lib/bulkhead/export-spool as root, else
// $XDG_STATE_HOME/bulkhead/export-spool (~/.local/state/…).
func DefaultSpoolBase() string {
	if os.Geteuid() == 0 {
		return "/var/lib/bulkhead/export-spool"
	}
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "bulkhead", "export-spool")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "bulkhead", "export-spool")
	}
	return filepath.Join(os.TempDir(), "bulkhead-export-spool")
}

// WithDefaults is c with every zero value set to its default.
func (c Config) WithDefaults() Config {
	if c.Host == "" {
		c.Host, _ = os.Hostname()
	}
	c.Host = SubjectToken(c.Host)
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = "bulkhead"
	}
	if c.Format == "" {
		c.Format = "json"
	}
	if c.Stream.Name == "" {
		c.Stream.Name = "BULKHEAD"
	}
	if c.Stream.MaxAge == 0 {
		c.Stream.MaxAge = 7 * 24 * time.Hour
	}
	if c.Stream.MaxMiB == 0 {
		c.Stream.MaxMiB = 1024
	}
	if c.Stream.DuplicateWindow == 0 {
		c.Stream.DuplicateWindow = 10 * time.Minute
	}
	if c.Stream.Replicas == 0 {
		c.Stream.Replicas = 1
	}
	if c.Window == 0 {
		c.Window = 256
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = 5 * time.Second
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 5 * time.Second
	}
	if c.Spool.Dir == "" {
		c.Spool.Dir = filepath.Join(DefaultSpoolBase(), c.Host)
	}
	if c.Spool.MaxMiB == 0 {
		c.Spool.MaxMiB = 256
	}
	if c.Spool.Sync == "" {
		c.Spool.Sync = SyncInterval
	}
	if c.Spool.SyncEvery == 0 {
		c.Spool.SyncEvery = 200 * time.Millisecond
	}
	return c
}

// Check refuses a configuration that cannot work, before anything starts
// (the url may come later, from a flag: New checks it).
func (c Config) Check() error {
	var errs []error
	if c.Format != "json" && c.Format != "ocsf" {
		errs = append(errs, fmt.Errorf("export: format %q: use json or ocsf", c.Format))
	}
	if strings.ContainsAny(c.SubjectPrefix, " \t\r\n*>") || strings.HasPrefix(c.SubjectPrefix, ".") || strings.HasSuffix(c.SubjectPrefix, ".") {
		errs = append(errs, fmt.Errorf("export: subject_prefix %q: NATS subject tokens separated by dots, no spaces or wildcards", c.SubjectPrefix))
	}
	if c.Window < 1 || c.Window > 65536 {
		errs = append(errs, fmt.Errorf("export: window %d: use 1 to 65536", c.Window))
	}
	if c.AckTimeout < 100*time.Millisecond || c.DrainTimeout < 0 {
		errs = append(errs, errors.New("export: ack_timeout at least 100ms, drain_timeout not negative"))
	}
	if c.Stream.MaxAge < 0 || c.Stream.MaxMiB < 0 || c.Stream.DuplicateWindow < 0 || c.Stream.DuplicateWindow > c.Stream.MaxAge {
		errs = append(errs, errors.New("export: stream max_age, max_mib and duplicate_window must not be negative, and duplicate_window at most max_age"))
	}
	if c.Spool.MaxMiB < 1 || c.Spool.MaxMiB > 1<<20 {
		errs = append(errs, fmt.Errorf("export: spool max_mib %d: use 1 to 1048576", c.Spool.MaxMiB))
	}
	switch c.Spool.Sync {
	case SyncAlways, SyncInterval, SyncNever:
	default:
		errs = append(errs, fmt.Errorf("export: spool sync %q: use always, interval or never", c.Spool.Sync))
	}
	if c.Creds != "" && c.NKey != "" {
		errs = append(errs, errors.New("export: creds and nkey: use one or the other"))
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		errs = append(errs, errors.New("export: tls cert and key go together"))
	}
	return errors.Join(errs...)
}

// NATSOptions are the connection's TLS and credentials.
func (c Config) NATSOptions() ([]nats.Option, error) {
	var opts []nats.Option
	if c.Creds != "" {
		opts = append(opts, nats.UserCredentials(c.Creds))
	}
	if c.NKey != "" {
		o, err := nats.NkeyOptionFromSeed(c.NKey)
		if err != nil {
			return nil, fmt.Errorf("export: nkey: %w", err)
		}
		opts = append(opts, o)
	}
	if c.TLS.CA != "" || c.TLS.Cert != "" || c.TLS.ServerName != "" || strings.HasPrefix(c.URL, "tls://") {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.TLS.ServerName}
		if c.TLS.CA != "" {
			pem, err := os.ReadFile(c.TLS.CA)
			if err != nil {
				return nil, fmt.Errorf("export: tls ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("export: tls ca %s: no PEM certificate", c.TLS.CA)
			}
			tc.RootCAs = pool
		}
		if c.TLS.Cert != "" {
			cert, err := tls.LoadX509KeyPair(c.TLS.Cert, c.TLS.Key)
			if err != nil {
				return nil, fmt.Errorf("export: tls cert: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, nats.Secure(tc))
	}
	return opts, nil
}

// SubjectToken makes s one NATS subject token: letters, digits, - and _
// kept, everything else (dots, wildcards, spaces, bytes that are not
// ASCII) becomes _, at most 64 bytes; empty becomes "unknown".
func SubjectToken(s string) string {
	b := []byte(s)
	if len(b) > 64 {
		b = b[:64]
	}
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "unknown"
	}
	return string(b)
}
