package goplugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/bulkhead-sec/bulkhead/backends/goplugin/enclave"
	"github.com/bulkhead-sec/bulkhead/backends/pluginlog"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin/runner"
	"golang.org/x/sys/unix"
)

// pluginRunner starts a plugin's process for go-plugin (its RunnerFunc)
// and decides where the monitor connects. The plugin names that place in
// its handshake line, and go-plugin would resolve and dial whatever it
// names: a TCP address (a connection, or a DNS lookup that leaks data past
// the enclave's network rules), or any UNIX socket on the host, as root.
// go-plugin asks PluginToHost before it resolves anything: only a UNIX
// socket is accepted, in the enclave's private directory when there is
// one, not a symbolic link, owned by the plugin's uid. The monitor then
// connects through /proc/self/fd to the very socket it checked, so the
// plugin cannot swap another file in between.
type pluginRunner struct {
	cmd            *exec.Cmd
	stdout, stderr io.ReadCloser
	sha256         string // checked before the start, without an enclave
	dir            string // the socket must be in this directory ("": anywhere)
	uid            int    // the socket's owner

	mu      sync.Mutex
	sock    *os.File // O_PATH handle of the checked socket
	refused error    // why the handshake's address was refused
}

// newRunner prepares cmd. With an enclave, the socket must be in its
// private directory and owned by its uid.
func newRunner(cmd *exec.Cmd, e *enclave.Enclave, sha256 string) *pluginRunner {
	r := &pluginRunner{cmd: cmd, uid: os.Geteuid()}
	if e == nil {
		r.sha256 = sha256
		return r
	}
	r.dir = filepath.Clean(e.Dir())
	if e.UID() >= 0 {
		r.uid = e.UID()
	}
	return r
}

// run is go-plugin's RunnerFunc. spec carries the environment go-plugin
// wants the plugin to have (the magic cookie, the protocol versions):
// it is added to cmd's, except the socket directory go-plugin made for
// itself (the plugin puts its socket in its own TMPDIR).
func (r *pluginRunner) run(_ hclog.Logger, spec *exec.Cmd, _ string) (runner.Runner, error) {
	for _, kv := range spec.Env {
		if !strings.HasPrefix(kv, "PLUGIN_UNIX_SOCKET_DIR=") {
			r.cmd.Env = append(r.cmd.Env, kv)
		}
	}
	var err error
	if r.stdout, err = r.cmd.StdoutPipe(); err != nil {
		return nil, err
	}
	if r.stderr, err = r.cmd.StderrPipe(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *pluginRunner) Start(context.Context) error {
	if r.sha256 != "" {
		if err := enclave.CheckSHA256(r.cmd.Path, r.sha256); err != nil {
			return err
		}
	}
	return r.cmd.Start()
}

func (r *pluginRunner) Wait(context.Context) error { return r.cmd.Wait() }

func (r *pluginRunner) Kill(context.Context) error {
	if r.cmd.Process == nil {
		return nil
	}
	if err := r.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

func (r *pluginRunner) Stdout() io.ReadCloser           { return r.stdout }
func (r *pluginRunner) Stderr() io.ReadCloser           { return r.stderr }
func (r *pluginRunner) Name() string                    { return r.cmd.Path }
func (r *pluginRunner) Diagnose(context.Context) string { return "" }

// ID is never empty, so that go-plugin's Kill cleans up after a start
// that failed before the process ran.
func (r *pluginRunner) ID() string {
	if r.cmd.Process == nil {
		return "0"
	}
	return strconv.Itoa(r.cmd.Process.Pid)
}

// PluginToHost checks the address of the plugin's handshake line; see
// pluginRunner. It is called once per start; any later call (go-plugin's
// broker, which the monitor never uses) is refused.
func (r *pluginRunner) PluginToHost(network, addr string) (string, string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sock != nil || r.refused != nil {
		return "", "", errors.New("the monitor makes one connection to a plugin")
	}
	hostAddr, err := r.check(network, addr)
	if err != nil {
		r.refused = violation(fmt.Errorf("its handshake names %s address %s: %w", pluginlog.SafeText(network), pluginlog.SafeText(addr), err))
		return "", "", r.refused
	}
	return "unix", hostAddr, nil
}

func (r *pluginRunner) check(network, addr string) (string, error) {
	if network != "unix" {
		return "", errors.New("the monitor connects to a plugin's UNIX socket only")
	}
	path := filepath.Clean(addr)
	if !filepath.IsAbs(path) {
		return "", errors.New("not an absolute path")
	}
	if r.dir != "" && filepath.Dir(path) != r.dir {
		return "", fmt.Errorf("outside the plugin's private directory %s", r.dir)
	}
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("open: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return "", err
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFSOCK:
		unix.Close(fd)
		return "", errors.New("not a socket (a symbolic link, or another file)")
	case int(st.Uid) != r.uid:
		unix.Close(fd)
		return "", fmt.Errorf("owned by uid %d, not by the plugin's uid %d", st.Uid, r.uid)
	}
	r.sock = os.NewFile(uintptr(fd), path)
	return "/proc/self/fd/" + strconv.Itoa(fd), nil
}

func (r *pluginRunner) HostToPlugin(string, string) (string, string, error) {
	return "", "", errors.New("the monitor offers a plugin no connections")
}

// refusal is why the handshake's address was refused (nil: it was not).
func (r *pluginRunner) refusal() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refused
}

// close lets go of the socket's handle, once go-plugin is done with it.
func (r *pluginRunner) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sock != nil {
		r.sock.Close()
	}
}
