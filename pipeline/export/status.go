package export

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// StatusFile is the name of the file, in the spool directory, where a
// running exporter says how it is (every second, and once at exit), for
// `bulkhead fleet status`.
const StatusFile = "status.json"

// maxStatusBytes bounds a status file read back.
const maxStatusBytes = 64 << 10

// Status is the status file.
type Status struct {
	PID     int       `json:"pid"`
	Updated time.Time `json:"updated"`
	Host    string    `json:"host"`
	// State: connected, disconnected (spooling), stopped (the monitor
	// ended; the spool keeps what is pending for the next start).
	State string `json:"state"`
	Stats Stats  `json:"stats"`
}

// status is e's status now.
func (e *Exporter) status(stopped bool) Status {
	st := e.Stats()
	state := "connected"
	switch {
	case stopped:
		state = "stopped"
	case !st.Connected:
		state = "disconnected"
	}
	return Status{PID: os.Getpid(), Updated: time.Now().UTC(), Host: e.cfg.Host, State: state, Stats: st}
}

// writeStatus replaces the status file atomically.
func (e *Exporter) writeStatus(stopped bool) error {
	raw, err := json.MarshalIndent(e.status(stopped), "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(e.cfg.Spool.Dir, StatusFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// statusLoop writes the status file every second until Close.
func (e *Exporter) statusLoop() {
	defer close(e.statusDone)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	e.writeStatus(false)
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			e.writeStatus(false)
		}
	}
}

// ReadStatus reads the status file of the spool in dir. A status whose
// process is gone without saying it stopped reads as "gone (was STATE)".
func ReadStatus(dir string) (Status, error) {
	var s Status
	path := filepath.Join(dir, StatusFile)
	f, err := os.Open(path)
	if err != nil {
		return s, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return s, err
	} else if st.Size() > maxStatusBytes {
		return s, fmt.Errorf("%s: %d bytes, more than a status file has", path, st.Size())
	}
	if err := json.NewDecoder(f).Decode(&s); err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	if s.State != "stopped" && s.PID > 0 {
		if err := syscall.Kill(s.PID, 0); errors.Is(err, syscall.ESRCH) {
			s.State = "gone (was " + s.State + ")"
		}
	}
	return s, nil
}
