package backends_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-sec/bulkhead/backends"
)

func TestEveryAllowsOncePerInterval(t *testing.T) {
	var e backends.Every
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if e.Allow(time.Hour) {
					allowed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if allowed.Load() != 1 {
		t.Fatalf("allowed %d times within the interval, want 1", allowed.Load())
	}
	var short backends.Every
	if !short.Allow(time.Millisecond) {
		t.Fatal("the first call was refused")
	}
	time.Sleep(2 * time.Millisecond)
	if !short.Allow(time.Millisecond) {
		t.Fatal("refused after the interval")
	}
}
