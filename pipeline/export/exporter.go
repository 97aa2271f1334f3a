package export

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/pipeline/sinks"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Stats are what the exporter did since it started.
type Stats struct {
	URL, Stream      string
	Connected        bool
	FindingsExported uint64 // findings taken into the spool
	EventsExported   uint64 // events taken into the spool
	Published        uint64 // publishes, resends included
	Acknowledged     uint64 // records JetStream acknowledged (each once)
	Duplicates       uint64 // of those, acknowledged as duplicates (already stored)
	Dropped          uint64 // records lost: spool full or unwritable, or too large
	Resends          uint64 // times the exporter went back to its first unacknowledged record
	Reconnects       uint64
	LastError        string
	Spool            SpoolStats
}

// Exporter publishes findings (and optionally events) to NATS
// JetStream through a write-ahead spool. It is a sinks.FindingSink.
type Exporter struct {
	cfg  Config
	log  *zap.Logger
	tb   event.Timebase
	ocsf *sinks.OCSF

	spool *Spool
	nc    *nats.Conn
	js    jetstream.JetStream

	encMu  sync.Mutex
	encBuf []byte
	evRecs [][]byte // events waiting for Flush
	evBuf  []byte

	findings, events, published, acked, dups, dropped, resends, reconnects atomic.Uint64
	lastErr                                                                atomic.Value // string

	wake       chan struct{} // connection state changed
	draining   chan struct{}
	stop       chan struct{}
	done       chan struct{}
	statusDone chan struct{}
	closeMu    sync.Once
	closed     atomic.Bool
	// connectedAtClose is the connection's state when Close ended it.
	connectedAtClose bool
}

// New opens the spool (resuming what a previous run left), connects in
// the background (a server that is not there yet is retried forever) and
// starts sending. version is the monitor's, for OCSF.
func New(cfg Config, tb event.Timebase, version string, log *zap.Logger) (*Exporter, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if cfg.URL == "" {
		return nil, errors.New("export: no server url (export: url: in the configuration, or --export nats://host:4222)")
	}
	copts, err := cfg.NATSOptions()
	if err != nil {
		return nil, err
	}
	sp, err := OpenSpool(cfg.Spool.Dir, SpoolOptions{MaxBytes: cfg.Spool.MaxMiB << 20, Sync: cfg.Spool.Sync, SyncEvery: cfg.Spool.SyncEvery})
	if err != nil {
		return nil, err
	}
	e := &Exporter{cfg: cfg, log: log, tb: tb, spool: sp, wake: make(chan struct{}, 1),
		draining: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{}), statusDone: make(chan struct{})}
	e.lastErr.Store("")
	if cfg.Format == "ocsf" {
		e.ocsf = sinks.NewOCSF(nil, io.Discard, tb, version, cfg.Host)
	}
	if st := sp.Stats(); st.Recovered > 0 || st.CorruptRecords > 0 {
		log.Info("export spool resumed: records a previous run did not see acknowledged are sent first",
			zap.Int64("records", st.Recovered), zap.Int64("bytes", st.PendingBytes), zap.Uint64("damaged_records_cut", st.CorruptRecords))
	}
	opts := append([]nats.Option{
		nats.Name("bulkhead " + cfg.Host),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		// No client-side buffer while disconnected: the spool is the buffer,
		// and a publish that cannot go fails at once.
		nats.ReconnectBufSize(-1),
		nats.Timeout(2 * time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				e.setErr(fmt.Errorf("disconnected: %w", err))
			}
			e.poke()
		}),
		nats.ReconnectHandler(func(*nats.Conn) { e.reconnects.Add(1); e.poke() }),
		nats.ConnectHandler(func(*nats.Conn) { e.poke() }),
		// The client's asynchronous errors (a write to a server that went
		// away) go to the log, not raw to stderr.
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			e.setErr(err)
			e.log.Debug("export: connection", zap.Error(err))
		}),
	}, copts...)
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		sp.Close()
		return nil, fmt.Errorf("export: %w", err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(cfg.Window), jetstream.WithPublishAsyncTimeout(cfg.AckTimeout))
	if err != nil {
		nc.Close()
		sp.Close()
		return nil, fmt.Errorf("export: %w", err)
	}
	e.nc, e.js = nc, js
	go e.run()
	go e.statusLoop()
	return e, nil
}

func (e *Exporter) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *Exporter) setErr(err error) { e.lastErr.Store(err.Error()) }

// A spool record: kind (0 finding, 1 event), u16 subject length, subject,
// u8 id length, id, message body.
func appendRecord(b []byte, kind byte, subject, id string, body []byte) []byte {
	b = append(b, kind)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(subject)))
	b = append(b, subject...)
	b = append(b, byte(len(id)))
	b = append(b, id...)
	return append(b, body...)
}

func parseRecord(p []byte) (kind byte, subject, id string, body []byte, err error) {
	if len(p) < 4 {
		return 0, "", "", nil, errors.New("short record")
	}
	kind = p[0]
	n := int(binary.LittleEndian.Uint16(p[1:]))
	p = p[3:]
	if len(p) < n+1 {
		return 0, "", "", nil, errors.New("short record")
	}
	subject, p = string(p[:n]), p[n:]
	m := int(p[0])
	p = p[1:]
	if len(p) < m {
		return 0, "", "", nil, errors.New("short record")
	}
	return kind, subject, string(p[:m]), p[m:], nil
}

// UIDHeader carries a finding's uid (the OCSF finding_info.uid) alone.
const UIDHeader = "Bulkhead-Finding-Uid"

// MsgID is a finding's Nats-Msg-Id: its host and its stable uid. The uid
// alone is the same on two hosts for the same detector, rule, summary,
// kernel time and thread (a recording replayed as two hosts): JetStream
// deduplicates a whole stream by id, so the host keeps them apart.
func MsgID(host, uid string) string { return host + ":" + uid }

// maxBody bounds one message: NATS's default max_payload is 1 MiB, and
// the headers ride along.
const maxBody = 1<<20 - 4<<10

// WriteFinding puts f in the spool, to be published to
// <prefix>.<host>.findings.<severity> with Nats-Msg-Id its stable uid. It
// returns an error when f was dropped (counted).
func (e *Exporter) WriteFinding(f *detection.Finding) error {
	e.encMu.Lock()
	defer e.encMu.Unlock()
	b := e.encBuf[:0]
	subject := e.cfg.SubjectPrefix + "." + e.cfg.Host + ".findings." + SubjectToken(f.Severity.String())
	b = appendRecord(b, 0, subject, MsgID(e.cfg.Host, sinks.FindingUID(f)), nil)
	head := len(b)
	if e.ocsf != nil {
		raw, err := json.Marshal(e.ocsf.Finding(f))
		if err != nil {
			e.dropped.Add(1)
			return fmt.Errorf("export: encode finding: %w", err)
		}
		b = sinks.AppendSanitizedJSON(b, raw)
	} else {
		b = sinks.AppendFindingJSON(b, f, e.tb)
	}
	e.encBuf = b
	if len(b)-head > maxBody {
		e.dropped.Add(1)
		return fmt.Errorf("export: a finding of %d bytes encoded: more than a message may carry (%d)", len(b)-head, maxBody)
	}
	if err := e.spool.Append(b); err != nil {
		e.dropped.Add(1)
		return err
	}
	e.findings.Add(1)
	return nil
}

// Write takes an event when events are exported (kept until Flush, then
// spooled in one write), else does nothing.
func (e *Exporter) Write(ev *event.Event) error {
	if !e.cfg.Events {
		return nil
	}
	e.encMu.Lock()
	defer e.encMu.Unlock()
	start := len(e.evBuf)
	subject := e.cfg.SubjectPrefix + "." + e.cfg.Host + ".events." + SubjectToken(ev.Kind.String())
	// An event's id: this host, its kernel time and thread, unique per boot.
	var id [40]byte
	idb := strconv.AppendUint(id[:0], ev.KernelTimeNs, 36)
	idb = append(idb, '-')
	idb = strconv.AppendUint(idb, uint64(ev.TID), 36)
	idb = append(idb, '-')
	idb = append(idb, ev.Kind.String()...)
	e.evBuf = appendRecord(e.evBuf, 1, subject, e.cfg.Host+"-"+string(idb), nil)
	e.evBuf = sinks.AppendEventJSON(e.evBuf, ev, e.tb)
	if len(e.evBuf)-start > maxBody {
		e.evBuf = e.evBuf[:start]
		e.dropped.Add(1)
		return errors.New("export: an event larger than a message may carry")
	}
	e.evRecs = append(e.evRecs, e.evBuf[start:len(e.evBuf):len(e.evBuf)])
	if len(e.evRecs) >= 1024 || len(e.evBuf) >= 1<<20 {
		return e.flushEventsLocked()
	}
	return nil
}

func (e *Exporter) flushEventsLocked() error {
	if len(e.evRecs) == 0 {
		return nil
	}
	before := e.spool.Stats().Dropped
	err := e.spool.AppendBatch(e.evRecs)
	lost := e.spool.Stats().Dropped - before
	e.dropped.Add(lost)
	e.events.Add(uint64(len(e.evRecs)) - lost)
	e.evRecs, e.evBuf = e.evRecs[:0], e.evBuf[:0]
	return err
}

// Flush spools the events taken since the last Flush.
func (e *Exporter) Flush() error {
	e.encMu.Lock()
	defer e.encMu.Unlock()
	return e.flushEventsLocked()
}

var errStopped = errors.New("stopped")

// run sends what the spool holds, in order, until Close.
func (e *Exporter) run() {
	defer close(e.done)
	r := e.spool.NewReader()
	defer r.Close()
	streamOK := false
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-e.stop:
			return
		default:
		}
		if !e.nc.IsConnected() {
			if e.lastErr.Load().(string) == "" {
				e.setErr(fmt.Errorf("no connection to %s yet", e.cfg.URL))
			}
			e.idle(time.Second)
			continue
		}
		if !streamOK {
			if err := e.ensureStream(); err != nil {
				e.setErr(err)
				e.log.Warn("export: the stream is not ready; retrying", zap.Error(err))
				e.idle(backoff)
				backoff = min(backoff*2, 5*time.Second)
				continue
			}
			streamOK = true
		}
		r.Seek(e.spool.Cursor())
		err := e.pump(r)
		if errors.Is(err, errStopped) {
			return
		}
		e.resends.Add(1)
		e.setErr(err)
		e.log.Debug("export: sending again from the first unacknowledged record", zap.Error(err))
		// Pending futures fail now rather than hold window slots until
		// their timeout; their records are sent again.
		e.js.CleanupPublisher()
		if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, nats.ErrNoResponders) {
			streamOK = false
		}
		e.idle(backoff)
		backoff = min(backoff*2, 5*time.Second)
		if e.nc.IsConnected() {
			backoff = 100 * time.Millisecond
		}
	}
}

// idle waits d, or less if the connection changes or Close is called.
func (e *Exporter) idle(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-e.wake:
	case <-e.stop:
	}
}

// ensureStream creates the stream when it is missing; an existing one is
// used as it is (an operator's settings win).
func (e *Exporter) ensureStream() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := e.js.Stream(ctx, e.cfg.Stream.Name)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("stream %s: %w", e.cfg.Stream.Name, err)
	}
	sc := e.cfg.Stream
	_, err = e.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        sc.Name,
		Description: "bulkhead findings and events (created by bulkhead)",
		Subjects:    []string{e.cfg.SubjectPrefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      sc.MaxAge,
		MaxBytes:    sc.MaxMiB << 20,
		Duplicates:  sc.DuplicateWindow,
		Storage:     jetstream.FileStorage,
		Replicas:    sc.Replicas,
	})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("create stream %s: %w", sc.Name, err)
	}
	e.log.Info("export: stream ready", zap.String("stream", sc.Name), zap.String("subjects", e.cfg.SubjectPrefix+".>"),
		zap.Duration("max_age", sc.MaxAge), zap.Int64("max_mib", sc.MaxMiB), zap.Duration("duplicate_window", sc.DuplicateWindow))
	return nil
}

type inflight struct {
	fut jetstream.PubAckFuture
	end Pos
}

// pump publishes records from r with at most Window awaiting their
// acknowledgement, and moves the spool's cursor as they are acknowledged,
// in order. It returns at the first failure: the caller starts again from
// the cursor (JetStream drops what it already has by Nats-Msg-Id).
func (e *Exporter) pump(r *Reader) error {
	q := make([]inflight, 0, e.cfg.Window)
	for {
		for len(q) < e.cfg.Window {
			p, end, ok, err := r.Next()
			if err != nil {
				e.log.Warn("export spool: a damaged record was skipped with the rest of its segment", zap.Error(err))
				continue
			}
			if !ok {
				break
			}
			kind, subject, id, body, err := parseRecord(p)
			if err != nil {
				e.log.Warn("export spool: an unreadable record was skipped", zap.Error(err))
				if len(q) == 0 {
					e.spool.Ack(end, 1)
				}
				continue
			}
			m := nats.NewMsg(subject)
			m.Data = append([]byte(nil), body...)
			m.Header.Set(jetstream.MsgIDHeader, id)
			if kind == 0 {
				m.Header.Set(UIDHeader, id[strings.LastIndexByte(id, ':')+1:])
			}
			fut, err := e.js.PublishMsgAsync(m)
			if err != nil {
				return err
			}
			e.published.Add(1)
			q = append(q, inflight{fut: fut, end: end})
		}
		if len(q) == 0 {
			select {
			case <-e.stop:
				return errStopped
			case <-e.spool.Notify():
			case <-e.wake:
				if !e.nc.IsConnected() {
					return nats.ErrConnectionClosed
				}
			}
			continue
		}
		var more <-chan struct{}
		if len(q) < e.cfg.Window {
			more = e.spool.Notify()
		}
		select {
		case ack := <-q[0].fut.Ok():
			if ack.Duplicate {
				e.dups.Add(1)
			}
			e.acked.Add(1)
			e.spool.Ack(q[0].end, 1)
			q = q[1:]
		case err := <-q[0].fut.Err():
			return err
		case <-more:
		case <-e.wake:
			if !e.nc.IsConnected() {
				return nats.ErrConnectionClosed
			}
		case <-e.stop:
			return errStopped
		}
	}
}

// Tee is s with the events also exported when the configuration says
// so; s itself otherwise (nil stays nil).
func (e *Exporter) Tee(s sinks.Sink) sinks.Sink {
	if !e.cfg.Events {
		return s
	}
	return tee{s: s, e: e}
}

type tee struct {
	s sinks.Sink
	e *Exporter
}

// Write gives ev to both; the exporter counts what it drops itself, so
// only the wrapped sink's error is returned.
func (t tee) Write(ev *event.Event) error {
	t.e.Write(ev)
	if t.s == nil {
		return nil
	}
	return t.s.Write(ev)
}

func (t tee) Flush() error {
	t.e.Flush()
	if t.s == nil {
		return nil
	}
	return t.s.Flush()
}

// Stats are the exporter's counters now.
func (e *Exporter) Stats() Stats {
	connected := e.nc.IsConnected()
	if e.closed.Load() {
		connected = e.connectedAtClose
	}
	return Stats{
		URL: e.cfg.URL, Stream: e.cfg.Stream.Name, Connected: connected,
		FindingsExported: e.findings.Load(), EventsExported: e.events.Load(),
		Published: e.published.Load(), Acknowledged: e.acked.Load(), Duplicates: e.dups.Load(),
		Dropped: e.dropped.Load(), Resends: e.resends.Load(), Reconnects: e.reconnects.Load(),
		LastError: e.lastErr.Load().(string), Spool: e.spool.Stats(),
	}
}

// Close flushes the events, waits up to DrainTimeout (or ctx) for the
// spool to be acknowledged, and stops. What is left stays in the spool
// for the next start.
func (e *Exporter) Close(ctx context.Context) error {
	var err error
	e.closeMu.Do(func() {
		err = e.Flush()
		close(e.draining)
		ctx, cancel := context.WithTimeout(ctx, e.cfg.DrainTimeout)
		defer cancel()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
	wait:
		for e.spool.Stats().Pending > 0 {
			select {
			case <-ctx.Done():
				break wait
			case <-t.C:
			}
		}
		close(e.stop)
		<-e.done
		<-e.statusDone
		e.connectedAtClose = e.nc.IsConnected()
		e.closed.Store(true)
		e.nc.Close()
		e.writeStatus(true)
		err = errors.Join(err, e.spool.Close())
	})
	return err
}

// Summary writes the export's line of the run summary.
func (s Stats) Summary(w io.Writer) {
	state := "connected at the end"
	if !s.Connected {
		state = "NOT connected at the end"
	}
	fmt.Fprintf(w, "  export to %s (stream %s, %s): %d findings and %d events exported, %d acknowledged (%d already stored), %d published with %d resends, %d reconnects\n",
		s.URL, s.Stream, state, s.FindingsExported, s.EventsExported, s.Acknowledged, s.Duplicates, s.Published, s.Resends, s.Reconnects)
	fmt.Fprintf(w, "  export spool: %d records (%d bytes) wait for the next start, %d recovered at start, %d dropped (spool full: the newest is dropped), %d damaged records cut\n",
		s.Spool.Pending, s.Spool.PendingBytes, s.Spool.Recovered, s.Dropped, s.Spool.CorruptRecords)
	if s.LastError != "" && s.Spool.Pending > 0 {
		fmt.Fprintf(w, "  export last error: %s\n", sinks.TextEscape(s.LastError))
	}
}
