package export

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/pipeline/event"
	"github.com/bulkhead-sec/bulkhead/pipeline/export/exporttest"
	"go.uber.org/zap"
)

// BenchmarkSpoolAppend: one 1 KiB record (a finding's size) per append,
// under each fsync policy, on the disk of the test's temporary directory.
func BenchmarkSpoolAppend(b *testing.B) {
	rec := bytes.Repeat([]byte("f"), 1024)
	for _, pol := range []SyncPolicy{SyncAlways, SyncInterval, SyncNever} {
		b.Run(string(pol), func(b *testing.B) {
			s, err := OpenSpool(b.TempDir(), SpoolOptions{MaxBytes: 1 << 30, Sync: pol})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			b.SetBytes(int64(len(rec)))
			for b.Loop() {
				if err := s.Append(rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkExportFindings: findings from WriteFinding to acknowledged by
// a local nats-server, per finding.
func BenchmarkExportFindings(b *testing.B) {
	srv := exporttest.Start(b)
	cfg := testConfig(srv.URL, b.TempDir())
	cfg.Spool.MaxMiB = 1024
	e, err := New(cfg, event.NewTimebase(), "bench", zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	start := time.Now()
	for b.Loop() {
		e.WriteFinding(finding(i))
		i++
	}
	if err := e.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	st := e.Stats()
	if st.Acknowledged != uint64(i) {
		b.Fatalf("acknowledged %d of %d", st.Acknowledged, i)
	}
	b.ReportMetric(float64(i)/time.Since(start).Seconds(), "acked-findings/s")
}
