package restart

import (
	"testing"
	"time"
)

func TestBreakerOpensAfterFailuresInTheWindow(t *testing.T) {
	s := State{Policy: Policy{BreakerCrashes: 3, BreakerWindow: time.Hour, BreakerCooldown: time.Hour}}
	for i := range 2 {
		if s.Failed() {
			t.Fatalf("opened at failure %d of 3", i+1)
		}
	}
	if !s.Failed() || !s.Open() || !s.Cooling() {
		t.Fatal("the third failure in the window did not open the breaker")
	}
	s.until = time.Now().Add(-time.Second) // the cool-down is over
	if s.Cooling() || s.Open() {
		t.Fatal("the breaker stayed open after its cool-down")
	}
}

func TestProgressForgetsFailures(t *testing.T) {
	s := State{Policy: Policy{BreakerCrashes: 2, BreakerWindow: time.Hour, BreakerCooldown: time.Hour}}
	s.Failed()
	s.Progressed()
	if s.Failed() {
		t.Fatal("a failure before an answered batch counted toward the breaker")
	}
}

func TestBackoffDoublesWithJitterUpToTheMaximum(t *testing.T) {
	s := State{Policy: Policy{BackoffInitial: 100 * time.Millisecond, BackoffMax: 400 * time.Millisecond}}
	if d := s.NextAttempt(); d != 0 {
		t.Fatalf("first restart waits %v, want 0", d)
	}
	for _, base := range []time.Duration{100, 200, 400, 400} {
		base *= time.Millisecond
		if d := s.NextAttempt(); d < base*3/4 || d > base*5/4 {
			t.Fatalf("wait %v, want %v ±25%%", d, base)
		}
	}
	s.Progressed()
	if d := s.NextAttempt(); d != 0 {
		t.Fatalf("after progress the restart waits %v, want 0", d)
	}
}
