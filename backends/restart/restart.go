package restart

import (
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Policy is how a detector is restarted.
type Policy struct {
	// Restarts back off exponentially from BackoffInitial to BackoffMax,
	// each ±25%; the first restart after an answered batch is immediate.
	BackoffInitial, BackoffMax time.Duration
	// The breaker opens after BreakerCrashes failures within
	// BreakerWindow with no batch answered in between: no restart until
	// BreakerCooldown has passed.
	BreakerCrashes  int
	BreakerWindow   time.Duration
	BreakerCooldown time.Duration
}

// State is one detector's failures and breaker under its Policy. Its
// methods belong to the backend's own goroutine, except Open.
type State struct {
	Policy
	failures    []time.Time // within the window
	consecutive int         // restarts since the last answered batch
	until       time.Time   // the breaker's cool-down ends
	open        atomic.Bool
}

// Failed notes a crash, hang or failed start, and reports whether it
// opened the breaker.
func (s *State) Failed() bool {
	now := time.Now()
	recent := s.failures[:0]
	for _, t := range s.failures {
		if now.Sub(t) < s.BreakerWindow {
			recent = append(recent, t)
		}
	}
	s.failures = append(recent, now)
	if len(s.failures) < s.BreakerCrashes {
		return false
	}
	s.until = now.Add(s.BreakerCooldown)
	s.open.Store(true)
	s.failures = s.failures[:0]
	return true
}

// Progressed notes an answered batch: earlier failures were not a loop.
func (s *State) Progressed() {
	s.consecutive = 0
	s.failures = s.failures[:0]
}

// Cooling reports whether the breaker still holds restarts off; once its
// cool-down has passed the breaker is closed again.
func (s *State) Cooling() bool {
	if time.Now().Before(s.until) {
		return true
	}
	s.open.Store(false)
	return false
}

// NextAttempt is the wait before the next restart (0 for the first since
// an answered batch), counting the attempt.
func (s *State) NextAttempt() time.Duration {
	var d time.Duration
	if s.consecutive > 0 {
		d = min(s.BackoffInitial<<min(s.consecutive-1, 20), s.BackoffMax)
		d = time.Duration(float64(d) * (0.75 + rand.Float64()/2))
	}
	s.consecutive++
	return d
}

// Open reports whether the breaker is open. Safe from any goroutine.
func (s *State) Open() bool { return s.open.Load() }

// DefaultPolicy suits a host: restarts from 50 ms to 5 s apart, the
// breaker open for a minute after 5 failures within 10 s.
func DefaultPolicy() Policy {
	return Policy{BackoffInitial: 50 * time.Millisecond, BackoffMax: 5 * time.Second,
		BreakerCrashes: 5, BreakerWindow: 10 * time.Second, BreakerCooldown: 60 * time.Second}
}
