package progress

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Bar tracks a run made of steps whose expected lengths are known ahead,
// so the bar fills by expected work and the remaining time is an estimate.
type Bar struct {
	w        io.Writer
	terminal bool
	mu       sync.Mutex
	total    time.Duration // expected length of all steps
	done     time.Duration // expected length of the steps finished
	cur      time.Duration // expected length of the current step
	label    string
	started  time.Time
	stepAt   time.Time
	steps    int
	stop     chan struct{}
	stopped  sync.WaitGroup
	measured func() float64 // NewMeasured: the share done, measured
}

// New starts a bar for steps expected to take total in all. On a terminal
// it redraws itself every 200ms until Finish.
func New(w io.Writer, terminal bool, total time.Duration) *Bar {
	b := &Bar{w: w, terminal: terminal, total: max(total, time.Millisecond), started: time.Now(), stop: make(chan struct{})}
	if terminal {
		b.stopped.Add(1)
		go b.redraw()
	}
	return b
}

// NewMeasured starts a bar that shows what measure says is done (0 to
// 1: bytes read of a file, time of a duration), labelled label. It draws
// only on a terminal; elsewhere it stays silent.
func NewMeasured(w io.Writer, terminal bool, label string, measure func() float64) *Bar {
	b := &Bar{w: w, terminal: terminal, total: time.Millisecond, label: label, started: time.Now(), stop: make(chan struct{}), measured: measure}
	if terminal {
		b.stopped.Add(1)
		go b.redraw()
	}
	return b
}

// Step ends the current step and starts one expected to take expect.
func (b *Bar) Step(label string, expect time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done += b.cur
	b.cur, b.label, b.stepAt = expect, label, time.Now()
	b.steps++
	if !b.terminal {
		fmt.Fprintf(b.w, "[%3.0f%% %s] %s\n", b.fraction()*100, clock(time.Since(b.started)), label)
		return
	}
	b.draw()
}

// Printf prints a line above the bar.
func (b *Bar) Printf(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.terminal {
		fmt.Fprint(b.w, "\r\x1b[K")
	}
	fmt.Fprintf(b.w, format, args...)
	if b.terminal {
		b.draw()
	}
}

// Finish ends the last step and the bar.
func (b *Bar) Finish() {
	close(b.stop)
	b.stopped.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.terminal {
		fmt.Fprint(b.w, "\r\x1b[K")
	}
	if b.measured != nil {
		return // the command says what it did
	}
	fmt.Fprintf(b.w, "done: %d steps in %s\n", b.steps, clock(time.Since(b.started)))
}

// fraction is the share of expected work done, counting the current step
// up to its expected length.
func (b *Bar) fraction() float64 {
	if b.measured != nil {
		return min(1, max(0, b.measured()))
	}
	in := min(time.Since(b.stepAt), b.cur)
	if b.stepAt.IsZero() {
		in = 0
	}
	return min(1, float64(b.done+in)/float64(b.total))
}

func (b *Bar) redraw() {
	defer b.stopped.Done()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.mu.Lock()
			b.draw()
			b.mu.Unlock()
		}
	}
}

// draw writes the bar over the current line: [#####-----] 42%  0:31 elapsed, ~0:40 left  label
func (b *Bar) draw() {
	const width = 30
	f := b.fraction()
	filled := int(f * width)
	elapsed := time.Since(b.started)
	left := "?"
	if f > 0.02 {
		left = "~" + clock(time.Duration(float64(elapsed)/f)-elapsed)
	}
	fmt.Fprintf(b.w, "\r\x1b[K[%s%s] %3.0f%%  %s elapsed, %s left  %s",
		strings.Repeat("#", filled), strings.Repeat("-", width-filled), f*100, clock(elapsed), left, b.label)
}

func clock(d time.Duration) string {
	s := int(d.Round(time.Second).Seconds())
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
