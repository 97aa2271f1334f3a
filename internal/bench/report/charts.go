package report

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"slices"
	"strconv"

	"github.com/bulkhead-sec/bulkhead/internal/bench"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// backendStyle gives each backend the same colour in every chart.
var backendOrder = []string{bench.InProc, bench.InProcRecover, bench.GoPlugin, bench.GoPluginGRPC, bench.GoPluginNaive, bench.Wasm}

// backendPalette is each backend's colour in plotutil's palette: wasm
// skips the brown next after purple, too close to inproc's red.
var backendPalette = []int{0, 1, 2, 3, 4, 6}

func backendColor(b string) color.Color {
	return plotutil.Color(backendPalette[max(0, slices.Index(backendOrder, b))])
}

// series is one line of a chart. Lines that may lie on each other differ
// in more than colour: dashes and point shapes (style).
type series struct {
	name   string
	color  color.Color
	dashed bool // dash-dot, whatever the style: real kernel events beside replayed ones
	xys    plotter.XYs
	style  int // 0: solid, circles; 1: long dashes, triangles; 2: dots, crosses
}

var (
	lineDashes = [][]vg.Length{nil, {vg.Points(6), vg.Points(3)}, {vg.Points(1.5), vg.Points(2.5)}}
	lineGlyphs = []draw.GlyphDrawer{draw.CircleGlyph{}, draw.TriangleGlyph{}, draw.CrossGlyph{}}
)

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
		st := s.style % len(lineDashes)
		l.Dashes, pts.Shape = lineDashes[st], lineGlyphs[st]
		l.Width = vg.Points(1.5)
		if s.dashed { // the kernel-events line beside a replay one: dash-dot
			l.Dashes = []vg.Length{vg.Points(8), vg.Points(2), vg.Points(2), vg.Points(2)}
		}
		p.Add(l, pts)
		p.Legend.Add(s.name, l, pts)
	}
	return nil
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text, p.X.Label.Text, p.Y.Label.Text = title, x, y
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.TextStyle.Font.Size = vg.Points(10)
	p.Y.Tick.Marker = siTicks{plot.DefaultTicks{}}
	p.Add(plotter.NewGrid())
	return p
}

func logY(p *plot.Plot) {
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = siTicks{plot.LogTicks{Prec: -1}}
}

// siTicks labels ticks with SI suffixes (250k, 10M) instead of 1e+07.
type siTicks struct{ plot.Ticker }

func (t siTicks) Ticks(min, max float64) []plot.Tick {
	ts := t.Ticker.Ticks(min, max)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = siLabel(ts[i].Value)
		}
	}
	return ts
}

// siLabel is v with an SI suffix and at most three significant digits.
func siLabel(v float64) string {
	a, suffix := math.Abs(v), ""
	for _, u := range []struct {
		f float64
		s string
	}{{1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if a >= u.f {
			v, suffix = v/u.f, u.s
			break
		}
	}
	if v == 0 {
		return "0"
	}
	digits := 3 - int(math.Floor(math.Log10(math.Abs(v)))) - 1
	r := math.Pow(10, float64(max(digits, 0)))
	return strconv.FormatFloat(math.Round(v*r)/r, 'f', -1, 64) + suffix
}

// savePlot draws p as a w×h PNG at path with its legend in a column of
// its own at the right (as wide as it needs), never over the plot or its
// title.
func savePlot(p *plot.Plot, w, h vg.Length, path string) error {
	lw := legendWidth(p)
	img := vgimg.New(w+lw, h)
	c := draw.New(img)
	leg := p.Legend
	p.Legend = plot.NewLegend() // nothing inside the plot
	p.Draw(draw.Crop(c, 0, -lw, 0, 0))
	leg.Draw(draw.Crop(c, c.Size().X-lw+vg.Points(8), 0, 0, -vg.Points(20)))
	return writePNG(img, path)
}

// legendWidth is the width the legend of p takes beside it.
func legendWidth(p *plot.Plot) vg.Length {
	c := draw.New(vgimg.New(vg.Inch, vg.Inch))
	return p.Legend.Rectangle(c).Size().X + vg.Points(12)
}

// writePNG writes img to path.
func writePNG(img *vgimg.Canvas, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		return err
	}
	return f.Close()
}

// throughputByBatch: replayed events/s into one detector, per batch size.
func throughputByBatch(r *bench.Report, path string) (bool, error) {
	p := newPlot("Throughput by batch size (replay, 1 trivial detector)", "batch size (events)", "events/s")
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	logY(p)
	var lines []series
	for _, b := range backendOrder {
		s := series{name: b, color: backendColor(b), style: slices.Index(backendOrder, b) % 3}
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
			s := series{name: src + " " + b, color: backendColor(b), dashed: src == bench.Kernel, style: slices.Index(backendOrder, b) % 3}
			for _, c := range r.Throughput {
				if c.Source == src && c.Backend == b && (c.Batch == bench.FloorBatch || b == bench.GoPluginNaive) {
					s.xys = append(s.xys, plotter.XY{X: float64(c.Detectors), Y: c.EventsPerSec})
				}
			}
			// Kernel events measured at one detector count only are a lone
			// point per backend: they lie on each other at x=1, and the
			// table beside the chart has them.
			if src == bench.Kernel && len(s.xys) < 2 {
				continue
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
		s := series{name: fmt.Sprintf("%s %s @ %s/s", c.Source, c.Backend, bench.Rate(c.RatePerSec)), color: backendColor(c.Backend), dashed: c.Source == bench.Kernel, style: slices.Index(backendOrder, c.Backend) % 3}
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
		lines := []series{{name: "faulty detector, events/s", color: plotutil.Color(0), xys: faulty, style: 0},
			{name: "healthy detector, events/s", color: plotutil.Color(1), xys: other, style: 1},
			{name: "findings/s × 50", color: plotutil.Color(2), xys: found, style: 2}}
		if err := addLines(p, lines); err != nil {
			return false, err
		}
		marked := map[string]bool{}
		for _, m := range c.Marks {
			l, err := plotter.NewLine(plotter.XYs{{X: m.T, Y: 0}, {X: m.T, Y: top * 1.05}})
			if err != nil {
				return false, err
			}
			l.Color = markColor[m.Kind]
			l.Dashes = []vg.Length{vg.Points(3), vg.Points(2)}
			l.Width = vg.Points(1.5)
			p.Add(l)
			if !marked[m.Kind] {
				marked[m.Kind] = true
				p.Legend.Add(m.Kind, l)
			}
		}
		p.Y.Min, p.Y.Max = 0, top*1.1
		p.X.Min, p.X.Max = 0, end
		plots = append(plots, []*plot.Plot{p})
	}
	if len(plots) == 0 {
		return false, nil
	}
	// One legend column for every panel, as wide as the widest legend.
	lw := vg.Length(0)
	for _, row := range plots {
		lw = max(lw, legendWidth(row[0]))
	}
	const w, rowH = 7 * vg.Inch, 2.6 * vg.Inch
	img := vgimg.New(w+lw, rowH*vg.Length(len(plots)))
	dc := draw.New(img)
	legends := make([]plot.Legend, len(plots))
	for i, row := range plots {
		legends[i], row[0].Legend = row[0].Legend, plot.NewLegend()
	}
	canvases := plot.Align(plots, draw.Tiles{Rows: len(plots), Cols: 1, PadY: vg.Points(6), PadTop: vg.Points(4), PadBottom: vg.Points(4)},
		draw.Crop(dc, 0, -lw, 0, 0))
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
		lc := canvases[i][0]
		lc.Min.X, lc.Max.X = dc.Max.X-lw+vg.Points(8), dc.Max.X
		lc.Max.Y -= vg.Points(20)
		legends[i].Draw(lc)
	}
	return true, writePNG(img, path)
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
	// same value.
	xmin, xmax, ymin, ymax := plotter.XYRange(allPoints(lines))
	if _, ok := p.X.Scale.(plot.LogScale); ok {
		p.X.Min, p.X.Max = xmin/1.2, xmax*1.2
	}
	if _, ok := p.Y.Scale.(plot.LogScale); ok {
		p.Y.Min, p.Y.Max = ymin/2, ymax*2
	}
	return true, savePlot(p, vg.Length(wIn)*vg.Inch, vg.Length(hIn)*vg.Inch, path)
}

func allPoints(lines []series) plotter.XYs {
	var all plotter.XYs
	for _, s := range lines {
		all = append(all, s.xys...)
	}
	return all
}
