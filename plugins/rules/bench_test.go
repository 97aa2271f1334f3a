package rules_test

import (
	"context"
	"testing"

	"github.com/bulkhead-sec/bulkhead/plugins/rules"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/sdktest"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// BenchmarkDefaultRules: what the default rule set costs per event of the
// busiest kinds, in the detector's OnEvent (as inproc calls it). The open
// of /dev/null is `bulkhead bench capture`'s storm.
func BenchmarkDefaultRules(b *testing.B) {
	d := rules.New()
	if err := d.Init(context.Background(), nil, zap.NewNop()); err != nil {
		b.Fatal(err)
	}
	p := sdktest.Proc{PID: 10, PPID: 9, Exe: "/usr/bin/cat", UID: 1000, EUID: 1000,
		Ancestors: []string{"/usr/bin/bash", "/usr/sbin/sshd", "/usr/sbin/sshd", "/usr/lib/systemd/systemd"}}
	for _, c := range []struct {
		name string
		ev   *sdk.Event
	}{
		{"open-devnull-rdonly", p.Open("/dev/null", unix.O_RDONLY, 3)},
		{"open-etc-rdonly", p.Open("/etc/ld.so.cache", unix.O_RDONLY|unix.O_CLOEXEC, 3)},
		{"open-home-write", p.Open("/home/u/notes.txt", unix.O_WRONLY|unix.O_CREAT, 3)},
		{"open-etc-cron-write", p.Open("/etc/cron.d/job", unix.O_WRONLY|unix.O_CREAT, 3)},
		{"exec", p.Child(11, "/usr/bin/ls", "ls", "-l").Exec()},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := d.OnEvent(context.Background(), c.ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
