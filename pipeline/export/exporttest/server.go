// Package exporttest runs a real nats-server with JetStream for tests, on
// 127.0.0.1 and a free port, its store in a temporary directory.
package exporttest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Server is one nats-server process.
type Server struct {
	t    testing.TB
	bin  string
	Port int
	Dir  string // JetStream store (-sd)
	URL  string
	cmd  *exec.Cmd
	log  string
}

// Binary is nats-server's path; the test is skipped when it is missing
// and cannot be installed (not root), and fails when root could have
// installed it (make deps-test does).
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err == nil {
		return bin
	}
	if os.Geteuid() != 0 {
		t.Skip("nats-server is not installed (Debian package nats-server; `sudo make deps-test` installs it): the export tests need a real JetStream server")
	}
	t.Fatal("nats-server is not installed: run `make deps-test` (as root it installs the Debian package nats-server)")
	return ""
}

// Start runs nats-server -js on 127.0.0.1 and a free port; it is ended
// (by its pid) when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, bin: Binary(t), Port: freePort(t), Dir: t.TempDir()}
	s.URL = fmt.Sprintf("nats://127.0.0.1:%d", s.Port)
	s.log = filepath.Join(s.Dir, "server.log")
	s.Restart()
	t.Cleanup(s.Kill)
	return s
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Restart starts the server again (after Kill) on the same port and store
// and waits until JetStream answers.
func (s *Server) Restart() {
	s.t.Helper()
	if s.cmd != nil {
		s.t.Fatal("exporttest: Restart of a running server")
	}
	logf, err := os.OpenFile(s.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(s.bin, "-js", "-a", "127.0.0.1", "-p", strconv.Itoa(s.Port), "-sd", filepath.Join(s.Dir, "store"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if s.ready() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, _ := os.ReadFile(s.log)
	s.t.Fatalf("nats-server did not become ready on port %d:\n%s", s.Port, log)
}

func (s *Server) ready() bool {
	nc, err := nats.Connect(s.URL, nats.Timeout(time.Second), nats.MaxReconnects(0))
	if err != nil {
		return false
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err == nil
}

// Kill ends the server with SIGKILL (by its pid) and waits for it.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

// Pid is the running server's pid, 0 when it is stopped.
func (s *Server) Pid() int {
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Messages reads every message of stream whose subject matches filter
// (">" for all), waiting up to wait for want of them (want 0: just what
// is there after a short wait), and returns their Nats-Msg-Id values in
// stream order and their bodies.
func Messages(t testing.TB, url, stream, filter string, want int, wait time.Duration) (ids []string, bodies [][]byte) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait+5*time.Second)
	defer cancel()
	deadline := time.Now().Add(wait)
	for {
		st, err := js.Stream(ctx, stream)
		if err == nil {
			info, err := st.Info(ctx)
			if err == nil && (want > 0 && info.State.Msgs >= uint64(want) || want == 0) || time.Now().After(deadline) {
				break
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("stream %s: %v", stream, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		t.Fatal(err)
	}
	for {
		batch, err := c.Fetch(1000, jetstream.FetchMaxWait(500*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			ids = append(ids, m.Headers().Get(jetstream.MsgIDHeader))
			bodies = append(bodies, m.Data())
		}
		if n == 0 {
			return ids, bodies
		}
	}
}
