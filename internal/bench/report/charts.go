package report

import (
	"fmt"
	"image/color"
	"os"
	"slices"

	"github.com/bulkhead-sec/bulkhead/internal/bench"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// backendStyle gives each backend the same colour in every chart.
var backendOrder = []string{bench.InProc, bench.InProcRecover, bench.GoPlugin, bench.GoPluginGRPC, bench.GoPluginNaive}

func backendColor(b string) color.Color { return plotutil.Color(max(0, slices.Index(backendOrder, b))) }

// series is one line of a chart.
type series struct {
	name   string
	color  color.Color
	dashed bool
	xys    plotter.XYs
}

func addLines(p *plot.Plot, lines []series) error {
	for _, s := range lines {
		if len(s.xys) == 0 {
			continue
		}
		l, pts, err := plotter.NewLinePoints(s.xys)
		if err != nil {
			return err
		}
		l.Color, pts.Color = s.color, s.color
		if s.dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(l, pts)
		p.Legend.Add(s.name, l, pts)
	}
	return nil
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text, p.X.Label.Text, p.Y.Label.Text = title, x, y
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return p
}

func logY(p *plot.Plot) {
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
}

// throughputByBatch: replayed events/s into one detector, per batch size.
func throughputByBatch(r *bench.Report, path string) (bool, error) {
	p := newPlot("Throughput by batch size (replay, 1 trivial detector)", "batch size (events)", "events/s")
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = false // bottom right: the lines rise to the right
	logY(p)
	var lines []series
	for _, b := range backendOrder {
		s := series{name: b, color: backendColor(b)}
		for _, c := range r.Throughput {
			if c.Source == bench.Replay && c.Backend == b && c.Detectors == 1 {
				s.xys = append(s.xys, plotter.XY{X: float64(c.Batch), Y: c.EventsPerSec})
			}
		}
		slices.SortFunc(s.xys, func(a, b plotter.XY) int { return int(a.X - b.X) })
		if b == bench.GoPluginNaive {
			s.name = "goplugin-naive (one RPC per event)"
		}
		lines = append(lines, s)
	}
	return save(p, lines, path, 7, 4.5)
}

// throughputByDetectors: events/s into 1, 4, 16 detectors, per source and backend.
func throughputByDetectors(r *bench.Report, path string) (bool, error) {
	p := newPlot(fmt.Sprintf("Throughput by detector count (batch %d; naive: 1)", bench.FloorBatch), "detectors (each gets every event)", "events/s")
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	logY(p)
	var lines []series
	for _, src := range []string{bench.Replay, bench.Kernel} {
		for _, b := range backendOrder {
			s := series{name: src + " " + b, color: backendColor(b), dashed: src == bench.Kernel}
			for _, c := range r.Throughput {
				if c.Source == src && c.Backend == b && (c.Batch == bench.FloorBatch || b == bench.GoPluginNaive) {
					s.xys = append(s.xys, plotter.XY{X: float64(c.Detectors), Y: c.EventsPerSec})
				}
			}
			lines = append(lines, s)
		}
	}
	return save(p, lines, path, 7, 4.5)
}

// latencyChart: kernel → finding percentiles per source and backend.
func latencyChart(r *bench.Report, path string) (bool, error) {
	p := newPlot("Latency, event timestamp → finding out", "percentile", "µs")
	logY(p)
	names := []string{"p50", "p90", "p99", "p99.9", "max"}
	p.NominalX(names...)
	var lines []series
	for _, c := range r.Latency {
		s := series{name: fmt.Sprintf("%s %s @ %s/s", c.Source, c.Backend, bench.Rate(c.RatePerSec)), color: backendColor(c.Backend), dashed: c.Source == bench.Kernel}
		for i, v := range c.KernelToFinding.Values() {
			s.xys = append(s.xys, plotter.XY{X: float64(i), Y: max(v, 1)})
		}
		lines = append(lines, s)
	}
	return save(p, lines, path, 7, 4.5)
}

// faultTimeline: one panel per backend for a fault, events/s of both
// detectors and findings/s over time, with fault, detection, recovery and
// death marked.
func faultTimeline(r *bench.Report, fault, path string) (bool, error) {
	var plots [][]*plot.Plot
	end := 0.0 // one time axis for every panel: a death shows as a line that stops
	for _, c := range r.Resilience {
		if c.Fault == fault {
			for _, s := range c.Timeline {
				end = max(end, s.T)
			}
		}
	}
	for _, c := range r.Resilience {
		if c.Fault != fault || len(c.Timeline) == 0 {
			continue
		}
		p := newPlot(fmt.Sprintf("%s on %s: %s", fault, c.Backend, c.Verdict), "seconds", "per second")
		var faulty, other, found plotter.XYs
		top := 1.0
		for _, s := range c.Timeline {
			faulty = append(faulty, plotter.XY{X: s.T, Y: s.FaultyPerSec})
			other = append(other, plotter.XY{X: s.T, Y: s.OtherPerSec})
			found = append(found, plotter.XY{X: s.T, Y: s.FindingsPerSec * 50})
			top = max(top, s.FaultyPerSec, s.OtherPerSec)
		}
		lines := []series{{"faulty detector, events/s", plotutil.Color(0), false, faulty},
			{"healthy detector, events/s", plotutil.Color(1), false, other},
			{"findings/s × 50", plotutil.Color(2), true, found}}
		if err := addLines(p, lines); err != nil {
			return false, err
		}
		for _, m := range c.Marks {
			l, err := plotter.NewLine(plotter.XYs{{X: m.T, Y: 0}, {X: m.T, Y: top * 1.05}})
			if err != nil {
				return false, err
			}
			l.Color = markColor[m.Kind]
			l.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
			p.Add(l)
		}
		p.Y.Min, p.Y.Max = 0, top*1.6 // room for the legend above the lines
		p.X.Min, p.X.Max = 0, end
		plots = append(plots, []*plot.Plot{p})
	}
	if len(plots) == 0 {
		return false, nil
	}
	const w, rowH = 7 * vg.Inch, 2.6 * vg.Inch
	img := vgimg.New(w, rowH*vg.Length(len(plots)))
	dc := draw.New(img)
	canvases := plot.Align(plots, draw.Tiles{Rows: len(plots), Cols: 1, PadY: vg.Points(6), PadTop: vg.Points(4), PadBottom: vg.Points(4)}, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		return false, err
	}
	return true, f.Close()
}

// markColor: fault red, detected orange, recovered green, died black.
var markColor = map[string]color.Color{
	"fault":     color.RGBA{R: 220, A: 255},
	"detected":  color.RGBA{R: 240, G: 150, A: 255},
	"recovered": color.RGBA{G: 160, A: 255},
	"died":      color.Black,
}

// save draws lines on p into a PNG; false if there was nothing to draw.
func save(p *plot.Plot, lines []series, path string, wIn, hIn float64) (bool, error) {
	n := 0
	for _, s := range lines {
		n += len(s.xys)
	}
	if n == 0 {
		return false, nil
	}
	if err := addLines(p, lines); err != nil {
		return false, err
	}
	// A log axis needs a positive range even when every point has the
	// same value; a legend on top gets a decade and a half above the lines.
	xmin, xmax, ymin, ymax := plotter.XYRange(allPoints(lines))
	if _, ok := p.X.Scale.(plot.LogScale); ok {
		p.X.Min, p.X.Max = xmin/1.2, xmax*1.2
	}
	if _, ok := p.Y.Scale.(plot.LogScale); ok {
		p.Y.Min, p.Y.Max = ymin/2, ymax*2
		if p.Legend.Top {
			p.Y.Max = ymax * 30
		}
	}
	return true, p.Save(vg.Length(wIn)*vg.Inch, vg.Length(hIn)*vg.Inch, path)
}

func allPoints(lines []series) plotter.XYs {
	var all plotter.XYs
	for _, s := range lines {
		all = append(all, s.xys...)
	}
	return all
}
