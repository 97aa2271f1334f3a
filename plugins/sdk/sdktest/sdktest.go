package sdktest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"

	"github.com/bulkhead-sec/bulkhead/backends/goplugin/wire"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/pipeline/recording"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/detect"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/internal/server"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
)

// Harness is a detector served in memory.
type Harness struct {
	def    detect.Definition
	stream wire.Detector_StreamClient
	enc    *wire.FlatEncoder
	seq    uint64
}

// Start serves d in memory, describes it, checks its definition and
// initialises it with config (JSON, as the monitor passes a detector's
// config block; "" for none). The returned error is what the monitor would
// report. Everything is stopped when the test ends; d's logs go to t.Log.
func Start(t testing.TB, d detect.Detector, config string) (*Harness, error) {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(wire.ServerOptions()...)
	wire.RegisterDetectorServer(srv, server.New(d, zaptest.NewLogger(t)))
	go srv.Serve(lis)
	conn, err := grpc.NewClient("passthrough:///sdktest", append(wire.DialOptions(0),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		srv.Stop()
		return nil, err
	}
	client := wire.NewDetectorClient(conn)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		client.Close(context.Background(), &wire.CloseRequest{})
		cancel()
		conn.Close()
		srv.Stop()
	})

	pd, err := client.Describe(ctx, &wire.DescribeRequest{})
	if err != nil {
		return nil, fmt.Errorf("describe: %w", plain(err))
	}
	h := &Harness{def: wire.DefinitionFromProto(pd), enc: wire.NewFlatEncoder()}
	if err := h.def.Validate(); err != nil {
		return nil, fmt.Errorf("definition: %w", err)
	}
	if _, err := client.Init(ctx, &wire.InitRequest{ConfigJson: []byte(config)}); err != nil {
		return nil, fmt.Errorf("init: %w", plain(err))
	}
	// Asked again, as the monitor does: the configuration may change the filter.
	if pd, err = client.Describe(ctx, &wire.DescribeRequest{}); err != nil {
		return nil, fmt.Errorf("describe: %w", plain(err))
	}
	if h.def = wire.DefinitionFromProto(pd); h.def.Validate() != nil {
		return nil, fmt.Errorf("definition after init: %w", h.def.Validate())
	}
	if h.stream, err = client.Stream(ctx); err != nil {
		return nil, err
	}
	return h, nil
}

// Definition is what the detector declared, as the monitor sees it.
func (h *Harness) Definition() detect.Definition { return h.def }

// Send hands the detector one batch of events and returns its findings,
// whose events point at the ones given. Events the detector did not
// declare (Kinds, Filter) are not sent, as in the monitor. A non-nil error
// says how many OnEvent calls failed and the last failure.
func (h *Harness) Send(events ...*event.Event) ([]detect.Finding, error) {
	kinds := h.def.KindSet()
	var sent []*event.Event
	for _, ev := range events {
		if kinds.Has(ev.Kind) && h.def.Filter.Wants(ev) {
			sent = append(sent, ev)
		}
	}
	if len(sent) == 0 {
		return nil, nil
	}
	h.enc.Reset()
	for _, ev := range sent {
		h.enc.Add(ev)
	}
	h.seq++
	if err := h.stream.SendMsg(&wire.OutBatch{Seq: h.seq, Count: uint32(len(sent)), Events: h.enc.Finish()}); err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	// Read as the monitor reads it: bounded, and anything it would refuse
	// is an error here.
	var in wire.InResult
	if err := h.stream.RecvMsg(&in); err != nil {
		return nil, fmt.Errorf("receive: %w", err)
	}
	res, refused, err := wire.ParseResult(in.Raw, len(sent), wire.DefaultLimits())
	if err != nil {
		return nil, err
	}
	if refused.Any() {
		return nil, fmt.Errorf("the monitor would refuse this result: %s", refused)
	}
	var out []detect.Finding
	for _, p := range res.Findings {
		f, err := wire.FindingFromProto(p, sent)
		if err != nil {
			return out, err
		}
		f.Detector = h.def.Name
		out = append(out, f)
	}
	if res.Errors > 0 {
		return out, fmt.Errorf("%d error(s), the last: %s", res.Errors, res.LastError)
	}
	return out, nil
}

// Run starts d with config, sends events as one batch and returns the
// findings; any error fails the test.
func Run(t testing.TB, d detect.Detector, config string, events ...*event.Event) []detect.Finding {
	t.Helper()
	h, err := Start(t, d, config)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := h.Send(events...)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// Rules lists the findings' rules, in order.
func Rules(fs []detect.Finding) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		out = append(out, f.Rule)
	}
	return out
}

// plain is the message of a gRPC error, as the detector wrote it.
func plain(err error) error {
	if s, ok := status.FromError(err); ok {
		return errors.New(s.Message())
	}
	return err
}

// Replay sends every event of a recording made with `bulkhead record` to d
// (started with config), in batches of up to 1024 as the monitor would,
// and returns the findings; any error fails the test. Recordings of real
// behaviour make unit tests that need no root: see testdata/recordings in
// the repository.
func Replay(t testing.TB, d detect.Detector, config, path string) []detect.Finding {
	t.Helper()
	evs := Events(t, path)
	h, err := Start(t, d, config)
	if err != nil {
		t.Fatal(err)
	}
	var out []detect.Finding
	for len(evs) > 0 {
		n := min(len(evs), 1024)
		fs, err := h.Send(evs[:n]...)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fs...)
		evs = evs[n:]
	}
	return out
}

// Events reads every event of a recording, each in memory of its own.
func Events(t testing.TB, path string) []*event.Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := recording.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer r.Close()
	var out []*event.Event
	for {
		evs, err := r.Next()
		for i := range evs {
			out = append(out, &evs[i])
		}
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
}
