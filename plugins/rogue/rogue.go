package rogue

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bulkhead-sec/bulkhead/backends/goplugin/wire"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

// Attacks lists every attack.
var Attacks = []string{"flood-findings", "huge-summary", "huge-fields", "bad-severity", "fabricated-evidence",
	"bad-counters", "out-of-order", "garbage", "stderr-flood", "slow", "hang", "ignore-close", "ignore-shutdown", "stream-error", "stderr-wide",
	"ring-consumer-past", "ring-backwards", "ring-write", "ring-answered-past", "ring-stall"}

// Config selects the attack.
type Config struct {
	Attack   string `json:"attack"`
	On       string `json:"on"`
	ReportOn string `json:"report_on"`
	Count    int    `json:"count"`
	Size     int    `json:"size"`
	Delay    string `json:"delay"`
	// PathPrefix, if set, is the plugin's filter: it is sent only opens
	// under it.
	PathPrefix string `json:"path_prefix"`
}

// Serve answers the monitor until it stops the plugin.
func Serve() {
	stderr := os.Stderr // go-plugin replaces os.Stderr; fd 2 is the monitor's pipe
	attack, arg := startAttack()
	dial(attack, arg)
	s := &server{stderr: stderr, start: attack}
	r, err := openRing()
	if err != nil {
		notice(stderr, "cannot open the ring: "+err.Error())
		os.Exit(1)
	}
	s.ring = r
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: wire.Handshake(),
		Plugins:         plugin.PluginSet{wire.PluginName: &grpcPlugin{s: s}},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			opts = append(opts, wire.ServerOptions()...)
			opts = append(opts, grpc.ChainStreamInterceptor(streamAttack(attack, stderr)), grpc.ChainUnaryInterceptor(s.unaryAttack))
			return grpc.NewServer(append(opts, grpc.ForceServerCodecV2(rawCodec{wire.Codec()}))...)
		},
		Logger: hclog.New(&hclog.LoggerOptions{Output: stderr, JSONFormat: true, Level: hclog.Warn}),
	})
}

type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	s *server
}

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	wire.RegisterDetectorServer(s, p.s)
	return nil
}

func (p *grpcPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("no client side")
}

// raw is an answer sent as it is: the rogue writes its results byte by byte.
type raw []byte

// rawCodec sends raw as it is and everything else as wire's codec does.
type rawCodec struct{ encoding.CodecV2 }

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(*raw); ok {
		return mem.BufferSlice{mem.SliceBuffer(*r)}, nil
	}
	return c.CodecV2.Marshal(v)
}

type server struct {
	wire.UnimplementedDetectorServer
	stderr io.Writer
	start  string // the start attack
	c      Config
	delay  time.Duration
	ring   *ring // batches come through the monitor's ring (transport shm)
}

func (s *server) Describe(context.Context, *wire.DescribeRequest) (*wire.Definition, error) {
	d := &wire.Definition{Name: []byte("rogue"), Version: []byte("1.0.0"), Description: []byte("TEST ONLY: breaks the plugin protocol"),
		Kinds: []uint32{uint32(event.KindOpen)}}
	if s.c.PathPrefix != "" {
		d.PathPrefixes = [][]byte{[]byte(s.c.PathPrefix)}
	}
	if s.start == "huge-definition" {
		d.Description = []byte(strings.Repeat("D", 2<<20))
	}
	return d, nil
}

func (s *server) Init(_ context.Context, req *wire.InitRequest) (*wire.InitResponse, error) {
	c := Config{Delay: "1.9s"}
	if len(req.ConfigJson) > 0 {
		if err := json.Unmarshal(req.ConfigJson, &c); err != nil {
			return nil, err
		}
	}
	known := c.Attack == ""
	for _, a := range Attacks {
		known = known || a == c.Attack
	}
	if !known {
		return nil, fmt.Errorf("attack %q: use one of %s", c.Attack, strings.Join(Attacks, ", "))
	}
	d, err := time.ParseDuration(c.Delay)
	if err != nil {
		return nil, err
	}
	s.c, s.delay = c, d
	return &wire.InitResponse{}, nil
}

func (s *server) Close(context.Context, *wire.CloseRequest) (*wire.CloseResponse, error) {
	return &wire.CloseResponse{}, nil
}

func (s *server) Stream(stream wire.Detector_StreamServer) error {
	if s.ring != nil {
		return s.ringStream(stream)
	}
	var (
		batch wire.InBatch
		dec   wire.FlatDecoder
	)
	for {
		if err := stream.RecvMsg(&batch); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		events, err := dec.Decode(batch.Events)
		if err != nil {
			return err
		}
		if s.c.Attack == "slow" {
			time.Sleep(s.delay)
		}
		if s.c.Attack == "stream-error" && s.triggered(events) {
			return s.streamError()
		}
		out := raw(s.answer(batch.Seq, events))
		if err := stream.SendMsg(&out); err != nil {
			return err
		}
	}
}

// triggered says whether an event of the batch triggers the attack.
func (s *server) triggered(events []event.Event) bool {
	for i := range events {
		if s.c.On != "" && strings.Contains(events[i].Open.Resolved, s.c.On) {
			return true
		}
	}
	return false
}

// answer is the result for a batch, with the attack in it if triggered.
func (s *server) answer(seq uint64, events []event.Event) []byte {
	var body []byte
	for i := range events {
		path := events[i].Open.Resolved
		if s.c.ReportOn != "" && strings.Contains(path, s.c.ReportOn) {
			body = appendFinding(body, finding{rule: "rogue-report", summary: "saw " + path, index: i, fields: fieldsJSON("path", path)})
		}
		if s.c.On != "" && strings.Contains(path, s.c.On) {
			var over []byte
			body, over = s.attack(body, i, len(events))
			if over != nil {
				return over
			}
		}
	}
	res := protowire.AppendTag(nil, 1, protowire.VarintType)
	res = protowire.AppendVarint(res, seq)
	return append(res, body...)
}

// attack adds the attack on event i to body, or returns a whole answer
// that replaces the result.
func (s *server) attack(body []byte, i, n int) ([]byte, []byte) {
	count := func(def int) int {
		if s.c.Count > 0 {
			return s.c.Count
		}
		return def
	}
	size := func(def int) int {
		if s.c.Size > 0 {
			return s.c.Size
		}
		return def
	}
	switch s.c.Attack {
	case "flood-findings":
		// Each finding is a one-letter rule and its evidence: 7 bytes.
		one := appendFinding(nil, finding{rule: "f", index: i})
		for range count(1_000_000) {
			body = append(body, one...)
		}
	case "huge-summary":
		body = appendFinding(body, finding{rule: "huge-summary", summary: strings.Repeat("S", size(50<<20)), index: i})
	case "huge-fields":
		big := strings.Repeat("F", size(1<<20))
		body = appendFinding(body, finding{rule: "huge-fields", summary: "fields", index: i, fields: fieldsJSON("big", big)})
	case "bad-severity":
		body = appendFinding(body, finding{rule: "bad-severity", severity: 99, summary: "severity 99", index: i})
	case "fabricated-evidence":
		enc := wire.NewFlatEncoder()
		forged := &event.Event{Header: event.Header{Kind: event.KindExec, PID: 1, Comm: "fabricated"}}
		forged.Exec.Exe = "/bin/fabricated"
		enc.Add(forged)
		body = appendFinding(body, finding{rule: "fabricated", summary: "pid 1 ran /bin/fabricated", index: -1, other: enc.Bytes()})
		body = appendFinding(body, finding{rule: "fabricated-index", summary: "past the batch", index: n + 1000})
	case "bad-counters":
		body = protowire.AppendTag(body, 3, protowire.VarintType)
		body = protowire.AppendVarint(body, 4_000_000_000)
		body = protowire.AppendTag(body, 4, protowire.BytesType)
		body = protowire.AppendString(body, strings.Repeat("\x1b[2J\x1b]0;pwned\x07\nFAKE log line\r", 1<<20/32))
	case "out-of-order":
		res := protowire.AppendTag(nil, 1, protowire.VarintType)
		return body, protowire.AppendVarint(res, 1<<40)
	case "garbage":
		return body, []byte{0xff, 0xff, 0xff, 0xff, 0x0f}
	case "stderr-flood":
		go s.flood(count(200_000))
	case "stderr-wide":
		go s.wide(count(120))
	case "hang":
		select {}
	case "stream-error":
		// An error status the plugin writes itself: `size` bytes (default
		// 32 KiB) of C1 controls, DEL and escapes, for the monitor's log.
		return body, nil
	}
	return body, nil
}

// flood writes lines to stderr as fast as the pipe takes them.
func (s *server) flood(n int) {
	lines := []string{
		`{"@level":"error","@message":"flood \u001b[2J\u001b]0;pwned\u0007 line","evil":"\u009b31m","n":%d}` + "\n",
		"[ERROR] raw \x1b[2J\x1b]0;pwned\x07 line %d \xff\xfe\n",
		`{"@message":1,"n":%d}` + "\n", // go-plugin's parser panics on this
	}
	// One line of 1 MiB, first, while the burst lets lines through.
	fmt.Fprintf(s.stderr, `{"@level":"warn","@message":"`+strings.Repeat("L", 1<<20)+`","n":%d}`+"\n", -1)
	for i := range n {
		fmt.Fprintf(s.stderr, lines[i%len(lines)], i)
	}
}

// wide writes n log lines, 40 a second (under the monitor's line rate),
// each with 16 fields of 1 KiB: what the monitor logs of each is 17 KiB.
func (s *server) wide(n int) {
	var line strings.Builder
	line.WriteString(`{"@level":"error","@message":"` + strings.Repeat("M", 1<<10) + `"`)
	for f := range 16 {
		fmt.Fprintf(&line, `,"f%d":"%s"`, f, strings.Repeat("V", 1<<10))
	}
	line.WriteString("}\n")
	for range n {
		io.WriteString(s.stderr, line.String())
		time.Sleep(25 * time.Millisecond)
	}
}

type finding struct {
	rule, summary string
	severity      uint64
	index         int // -1: none
	other         []byte
	fields        []byte
}

func appendFinding(b []byte, f finding) []byte {
	m := protowire.AppendTag(nil, 1, protowire.BytesType)
	m = protowire.AppendString(m, f.rule)
	if f.severity != 0 {
		m = protowire.AppendTag(m, 2, protowire.VarintType)
		m = protowire.AppendVarint(m, f.severity)
	}
	if f.summary != "" {
		m = protowire.AppendTag(m, 3, protowire.BytesType)
		m = protowire.AppendString(m, f.summary)
	}
	if f.index >= 0 {
		m = protowire.AppendTag(m, 4, protowire.VarintType)
		m = protowire.AppendVarint(m, uint64(f.index))
	}
	if f.other != nil {
		m = protowire.AppendTag(m, 5, protowire.BytesType)
		m = protowire.AppendBytes(m, f.other)
		m = protowire.AppendTag(m, 6, protowire.VarintType)
		m = protowire.AppendVarint(m, 1)
	}
	if f.fields != nil {
		m = protowire.AppendTag(m, 7, protowire.BytesType)
		m = protowire.AppendBytes(m, f.fields)
	}
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}

// fieldsJSON is {key: value}, with a value that is not UTF-8 in the
// monitor's bytes form.
func fieldsJSON(key, value string) []byte {
	var v any = value
	if !utf8.ValidString(value) {
		v = map[string]string{wire.BytesKey: base64.StdEncoding.EncodeToString([]byte(value))}
	}
	b, _ := json.Marshal(map[string]any{key: v})
	return b
}

// streamError is the stream-error attack's status: escapes, controls and
// DEL, size bytes of them.
func (s *server) streamError() error {
	return status.Error(codes.Unknown, strings.Repeat("\u009b31m\x7f\x1b]0;pwned\x07 ", max(s.c.Size, 32<<10)/16))
}
