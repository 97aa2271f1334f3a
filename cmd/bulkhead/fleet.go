package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bulkhead-sec/bulkhead/pipeline/export"
	"github.com/bulkhead-sec/bulkhead/pipeline/sinks"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/detect"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// exportFlagUsage is the help of --export on run and replay.
const exportFlagUsage = "also publish findings to NATS JetStream at this URL, e.g. nats://127.0.0.1:4222 (the configuration's export: section sets the rest; see docs/export.md)"

func fleetCommand(args []string, stdout, stderr io.Writer) error {
	const fleetUsage = "Usage:\n  bulkhead fleet tail --server URL [--host H] [--severity S]   findings every host exports to NATS JetStream, as they arrive\n  bulkhead fleet status [--spool DIR] [--json]                 this machine's exporters\n"
	if ok, err := subcommandHelp("fleet", args, fleetUsage, stderr); ok {
		return err
	}
	switch {
	case len(args) > 0 && args[0] == "tail":
		return fleetTail(args[1:], stdout, stderr)
	case len(args) > 0 && args[0] == "status":
		return fleetStatus(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "Usage:\n  bulkhead fleet tail --server URL [--host H] [--severity S]\n  bulkhead fleet status [--spool DIR] [--json]\n")
	return usageErr("fleet: use tail or status")
}

// fleetStatus shows this machine's exporters, from the status file each
// keeps in its spool directory: connected or not, what waits, what was
// dropped.
func fleetStatus(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fleet status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var spools listFlag
	fs.Var(&spools, "spool", "a spool directory (repeatable; default every one under "+export.DefaultSpoolBase()+")")
	configPath := fs.String("config", "", "the spool of this configuration's export: section")
	asJSON := fs.Bool("json", false, "print the status files as a JSON array")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	if *configPath != "" {
		fc, err := loadConfig(*configPath)
		if err != nil {
			return err
		}
		if fc.Export == nil {
			return usageErr("--config %s has no export: section", *configPath)
		}
		spools = append(spools, fc.Export.WithDefaults().Spool.Dir)
	}
	if len(spools) == 0 {
		found, _ := filepath.Glob(filepath.Join(export.DefaultSpoolBase(), "*", export.StatusFile))
		for _, f := range found {
			spools = append(spools, filepath.Dir(f))
		}
	}
	if len(spools) == 0 {
		return fmt.Errorf("no exporter status under %s (is export: configured? --spool DIR names another spool)", export.DefaultSpoolBase())
	}
	var all []export.Status
	var errs []error
	for _, dir := range spools {
		st, err := export.ReadStatus(dir)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		all = append(all, st)
	}
	if *asJSON {
		raw, err := json.MarshalIndent(all, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", raw)
		return errors.Join(errs...)
	}
	fmt.Fprintf(stdout, "%-20s %-22s %8s %9s %10s %10s %9s %8s %10s  %s\n", "HOST", "STATE", "PID", "UPDATED", "EXPORTED", "ACKED", "WAITING", "DROPPED", "RECONNECTS", "SERVER")
	for _, s := range all {
		x := s.Stats
		fmt.Fprintf(stdout, "%-20s %-22s %8d %8ss %10d %10d %9d %8d %10d  %s\n", sinks.TextEscape(s.Host), sinks.TextEscape(s.State), s.PID,
			strconv.Itoa(int(time.Since(s.Updated).Seconds())), x.FindingsExported+x.EventsExported, x.Acknowledged, x.Spool.Pending, x.Dropped, x.Reconnects, sinks.TextEscape(x.URL))
		if x.LastError != "" && (x.Spool.Pending > 0 || !x.Connected) {
			fmt.Fprintf(stdout, "%-20s last error: %s\n", "", sinks.TextEscape(x.LastError))
		}
	}
	return errors.Join(errs...)
}

// fleetTail prints the findings of every host (or one) as they reach the
// stream: a JetStream ordered consumer, nothing acknowledged or kept on
// the server.
func fleetTail(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fleet tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "", "NATS server URL, e.g. nats://127.0.0.1:4222 (default: the configuration's export: url)")
	host := fs.String("host", "", "only this host (its subject token, as the monitor exports it)")
	severity := fs.String("severity", "", "only this severity (info, low, medium, high, critical); S+ for S and above")
	all := fs.Bool("all", false, "print what the stream holds first, then follow (default: only new findings)")
	count := fs.Int("count", 0, "exit after this many findings (0: until SIGINT/SIGTERM)")
	asJSON := fs.Bool("json", false, "print each finding's JSON as published (sanitized), prefixed by nothing")
	configPath := fs.String("config", "", "take TLS, credentials, stream and subject prefix from this configuration's export: section")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: bulkhead fleet tail --server URL [--host H] [--severity S]\n\nPrints the findings every monitor exports to JetStream, as they arrive, one line each.\n\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	var c export.Config
	if *configPath != "" {
		fc, err := loadConfig(*configPath)
		if err != nil {
			return err
		}
		if fc.Export != nil {
			c = *fc.Export
		}
	}
	if *server != "" {
		c.URL = *server
	}
	if c.URL == "" {
		return usageErr("--server URL is needed (or --config with export: url:)")
	}
	c = c.WithDefaults()
	if err := c.Check(); err != nil {
		return err
	}
	hostTok := "*"
	if *host != "" {
		hostTok = export.SubjectToken(*host)
	}
	sevTok, minSev := "*", detect.Severity(0)
	if s := strings.TrimSuffix(*severity, "+"); s != "" {
		sev, err := detect.ParseSeverity(s)
		if err != nil {
			return usageErr("--severity %q: %v", *severity, err)
		}
		if strings.HasSuffix(*severity, "+") {
			minSev = sev
		} else {
			sevTok = sev.String()
		}
	}
	filter := c.SubjectPrefix + "." + hostTok + ".findings." + sevTok
	opts, err := c.NATSOptions()
	if err != nil {
		return err
	}
	nc, err := nats.Connect(c.URL, append(opts, nats.Name("bulkhead fleet tail"), nats.MaxReconnects(-1))...)
	if err != nil {
		return fmt.Errorf("connect %s: %w", c.URL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, stop := runContext(0)
	defer stop()
	policy := jetstream.DeliverNewPolicy
	if *all {
		policy = jetstream.DeliverAllPolicy
	}
	cons, err := js.OrderedConsumer(ctx, c.Stream.Name, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, DeliverPolicy: policy})
	if err != nil {
		return fmt.Errorf("stream %s on %s: %w", c.Stream.Name, c.URL, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); it.Stop() }()
	fmt.Fprintf(stderr, "following %s in stream %s on %s\n", filter, c.Stream.Name, c.URL)
	n := 0
	for *count == 0 || n < *count {
		m, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		line, sev := fleetLine(m.Subject(), m.Data(), *asJSON)
		if sev < minSev {
			continue
		}
		if _, err := io.WriteString(stdout, line); err != nil {
			return err
		}
		n++
	}
	return nil
}

// fleetFinding is what a line shows of a finding; both the file sink's
// JSON and OCSF are read.
type fleetFinding struct {
	Time       string   `json:"time"`
	Detector   string   `json:"detector"`
	Rule       string   `json:"rule"`
	Severity   string   `json:"severity"`
	Summary    string   `json:"summary"`
	Techniques []string `json:"techniques"`
	Events     []struct {
		PID uint32 `json:"pid"`
	} `json:"events"`
	// OCSF
	FindingInfo *struct {
		Title string `json:"title"`
		Desc  string `json:"desc"`
	} `json:"finding_info"`
}

// fleetLine is one finding as a line: HOST TIME SEVERITY DETECTOR/RULE:
// SUMMARY [TECHNIQUES] pid=N. Everything in it came from another host
// (any bytes): escaped for the terminal like the text sink does.
func fleetLine(subject string, body []byte, asJSON bool) (string, detect.Severity) {
	toks := strings.Split(subject, ".")
	host, sevTok := "?", ""
	if len(toks) >= 4 {
		host, sevTok = toks[len(toks)-3], toks[len(toks)-1]
	}
	sev, _ := detect.ParseSeverity(sevTok)
	if asJSON {
		if !json.Valid(body) {
			return fmt.Sprintf("# %s: a message of %d bytes that is not JSON\n", sinks.TextEscape(host), len(body)), sev
		}
		return string(sinks.AppendSanitizedJSON(nil, body)) + "\n", sev
	}
	var f fleetFinding
	if err := json.Unmarshal(body, &f); err != nil {
		return fmt.Sprintf("%-16s ? unreadable finding of %d bytes: %s\n", sinks.TextEscape(host), len(body), sinks.TextEscape(err.Error())), sev
	}
	if f.FindingInfo != nil && f.Detector == "" {
		f.Detector, f.Summary = f.FindingInfo.Title, f.FindingInfo.Desc
	}
	if f.Severity != "" {
		if s, err := detect.ParseSeverity(f.Severity); err == nil {
			sev = s
		}
	}
	b := make([]byte, 0, 256)
	b = append(b, fmt.Sprintf("%-16s ", sinks.TextEscape(host))...)
	if t, err := time.Parse(time.RFC3339Nano, f.Time); err == nil {
		b = t.Local().AppendFormat(b, "15:04:05.000 ")
	}
	b = append(b, fmt.Sprintf("%-8s ", sev)...)
	b = append(b, sinks.TextEscape(f.Detector)...)
	if f.Rule != "" {
		b = append(b, '/')
		b = append(b, sinks.TextEscape(f.Rule)...)
	}
	b = append(b, ": "...)
	b = append(b, sinks.TextEscape(f.Summary)...)
	if len(f.Techniques) > 0 {
		b = append(b, " ["...)
		for i, t := range f.Techniques {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, sinks.TextEscape(t)...)
		}
		b = append(b, ']')
	}
	if len(f.Events) > 0 {
		b = append(b, " pid="...)
		b = strconv.AppendUint(b, uint64(f.Events[0].PID), 10)
	}
	return string(append(b, '\n')), sev
}
