package export

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/pipeline/export/exporttest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// simEnv reads an integer knob of the fleet simulation.
func simEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// hostFinding is finding i of host h: distinct events, so a distinct uid.
func hostFinding(h, i int) *detection.Finding {
	ev := &event.Event{Header: event.Header{Kind: event.KindExec, PID: uint32(1000 + h), TID: uint32(i), Comm: "sh", KernelTimeNs: uint64(i + 1)}}
	ev.Exec = event.Exec{Filename: "/bin/sh", Exe: "/usr/bin/dash", Args: "sh\x00-c\x00id"}
	return &detection.Finding{Detector: "sim", Rule: "shell", Severity: detection.Severity(i % 5),
		Summary: fmt.Sprintf("host %d finding %d", h, i), Events: []*event.Event{ev}}
}

// TestFleetSimulation: HOSTS exporters (distinct host ids) publish to one
// nats-server at once. Phase 1: as fast as they can, findings then
// events, until every one is acknowledged: the rates the server takes.
// Phase 2: a steady load for SIM_SECONDS, the server SIGKILLed for
// OUTAGE_SECONDS in the middle: the spools hold what comes meanwhile and
// drain after. Then every host's findings and events are counted in the
// stream: nothing lost, nothing twice. Long: run with
// BULKHEAD_FLEET_SIM=1 (see docs/export.md for the figures).
func TestFleetSimulation(t *testing.T) {
	if os.Getenv("BULKHEAD_FLEET_SIM") == "" {
		t.Skip("the fleet simulation takes about two minutes: BULKHEAD_FLEET_SIM=1 go test -run TestFleetSimulation -v ./pipeline/export/")
	}
	hosts := simEnv("HOSTS", 20)
	burst := simEnv("BURST_FINDINGS", 5000)          // per host, phase 1
	burstEvents := simEnv("BURST_EVENTS", 20000)     // per host, phase 1
	findingsPerSec := simEnv("FINDINGS_PER_SEC", 50) // per host, phase 2
	eventsPerSec := simEnv("EVENTS_PER_SEC", 1000)   // per host, phase 2
	seconds := simEnv("SIM_SECONDS", 60)
	outage := simEnv("OUTAGE_SECONDS", 30)

	srv := exporttest.Start(t)
	exps := make([]*Exporter, hosts)
	for h := range exps {
		cfg := Config{URL: srv.URL, Host: fmt.Sprintf("host-%02d", h+1), Events: true, Spool: SpoolConfig{Dir: t.TempDir(), MaxMiB: 512},
			DrainTimeout: 2 * time.Minute}
		e, err := New(cfg, event.NewTimebase(), "sim", zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		exps[h] = e
	}
	acked := func() (n uint64) {
		for _, e := range exps {
			n += e.Stats().Acknowledged
		}
		return n
	}
	waitAcked := func(want uint64, limit time.Duration) time.Duration {
		start := time.Now()
		for acked() < want {
			if time.Since(start) > limit {
				t.Fatalf("acknowledged %d of %d after %s", acked(), want, limit)
			}
			time.Sleep(5 * time.Millisecond)
		}
		return time.Since(start)
	}
	var wg sync.WaitGroup
	next := make([]int, hosts)   // the next finding index per host
	nextEv := make([]int, hosts) // the next event index per host
	var written, writtenEv atomic.Uint64

	// Phase 1: findings as fast as every host can.
	start := time.Now()
	for h, e := range exps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < burst; i++ {
				if err := e.WriteFinding(hostFinding(h, next[h]+i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for h := range next {
		next[h] += burst
	}
	waitAcked(uint64(hosts*burst), 2*time.Minute)
	fRate := float64(hosts*burst) / time.Since(start).Seconds()
	t.Logf("phase 1: %d hosts x %d findings: %.0f findings/s acknowledged (written to acknowledged, all hosts)", hosts, burst, fRate)

	// Phase 1b: events as fast as every host can (flushed every 256).
	base := acked()
	start = time.Now()
	for h, e := range exps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := hostFinding(h, 0).Events[0]
			for i := 0; i < burstEvents; i++ {
				ev.KernelTimeNs = uint64(nextEv[h] + i + 1)
				e.Write(ev)
				if i%256 == 255 {
					e.Flush()
				}
			}
			e.Flush()
		}()
	}
	wg.Wait()
	for h := range nextEv {
		nextEv[h] += burstEvents
	}
	waitAcked(base+uint64(hosts*burstEvents), 2*time.Minute)
	eRate := float64(hosts*burstEvents) / time.Since(start).Seconds()
	t.Logf("phase 1: %d hosts x %d events: %.0f events/s acknowledged", hosts, burstEvents, eRate)

	// Phase 2: a steady load, the server away for outage seconds.
	stop := make(chan struct{})
	for h, e := range exps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			ev := hostFinding(h, 0).Events[0]
			begin := time.Now()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				el := time.Since(begin).Seconds()
				for float64(next[h]-burst) < el*float64(findingsPerSec) {
					if e.WriteFinding(hostFinding(h, next[h])) == nil {
						written.Add(1)
					}
					next[h]++
				}
				for float64(nextEv[h]-burstEvents) < el*float64(eventsPerSec) {
					ev.KernelTimeNs = uint64(nextEv[h] + 1)
					e.Write(ev)
					writtenEv.Add(1)
					nextEv[h]++
				}
				e.Flush()
			}
		}()
	}
	phase2 := time.Now()
	down, up := time.Duration(seconds-outage)/2*time.Second, time.Duration(seconds+outage)/2*time.Second
	var lines []string
	maxPending, maxBytes := int64(0), int64(0)
	for sec := 1; sec <= seconds; sec++ {
		time.Sleep(time.Until(phase2.Add(time.Duration(sec) * time.Second)))
		switch el := time.Since(phase2); {
		case srv.Pid() != 0 && el >= down && el < up:
			srv.Kill()
			lines = append(lines, fmt.Sprintf("t=%ds: nats-server SIGKILLed", sec))
		case srv.Pid() == 0 && el >= up:
			srv.Restart()
			lines = append(lines, fmt.Sprintf("t=%ds: nats-server started again", sec))
		}
		var pend, bytes, drop int64
		for _, e := range exps {
			st := e.Stats()
			pend += st.Spool.Pending
			bytes += st.Spool.DiskBytes
			drop += int64(st.Dropped)
		}
		maxPending, maxBytes = max(maxPending, pend), max(maxBytes, bytes)
		if sec%5 == 0 || sec == seconds {
			lines = append(lines, fmt.Sprintf("t=%ds: %d records waiting in the spools (%.1f MiB on disk), %d dropped, %d acknowledged", sec, pend, float64(bytes)/(1<<20), drop, acked()))
		}
	}
	close(stop)
	wg.Wait()
	drainStart := time.Now()
	total := uint64(hosts*(burst+burstEvents)) + written.Load() + writtenEv.Load()
	waitAcked(total, 3*time.Minute)
	drain := time.Since(drainStart)
	for _, l := range lines {
		t.Log("phase 2: " + l)
	}
	t.Logf("phase 2: %d hosts x (%d findings/s + %d events/s) for %ds, server away %ds: %d findings and %d events written; at most %d records (%.1f MiB) waited in the spools; all acknowledged %s after the load stopped",
		hosts, findingsPerSec, eventsPerSec, seconds, outage, written.Load(), writtenEv.Load(), maxPending, float64(maxBytes)/(1<<20), drain.Round(time.Millisecond))

	var reconnects, dups, dropped uint64
	for _, e := range exps {
		if err := e.Close(context.Background()); err != nil {
			t.Error(err)
		}
		st := e.Stats()
		reconnects += st.Reconnects
		dups += st.Duplicates
		dropped += st.Dropped
	}
	// Count, per host, findings and events in the stream.
	nc, err := nats.Connect(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "BULKHEAD")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter("bulkhead.>"))
	if err != nil {
		t.Fatal(err)
	}
	perHost := map[string][2]uint64{}
	for subj, n := range info.State.Subjects {
		toks := strings.Split(subj, ".")
		c := perHost[toks[1]]
		if toks[2] == "findings" {
			c[0] += n
		} else {
			c[1] += n
		}
		perHost[toks[1]] = c
	}
	for h, e := range exps {
		s := e.Stats()
		got := perHost[fmt.Sprintf("host-%02d", h+1)]
		if got[0] != s.FindingsExported || got[1] != s.EventsExported || s.FindingsExported != uint64(next[h]) {
			t.Errorf("host-%02d: stream has %d findings and %d events; it exported %d and %d (wrote %d findings)", h+1, got[0], got[1], s.FindingsExported, s.EventsExported, next[h])
		}
	}
	t.Logf("stream: %d messages, %d MiB; %d reconnects, %d resends answered as duplicates, %d dropped", info.State.Msgs, info.State.Bytes>>20, reconnects, dups, dropped)
	if dropped != 0 || info.State.Msgs != total {
		t.Errorf("the stream has %d messages, %d were written; %d dropped", info.State.Msgs, total, dropped)
	}
}
