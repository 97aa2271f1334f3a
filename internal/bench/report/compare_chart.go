package report

import (
	"fmt"

	"github.com/bulkhead-sec/bulkhead/internal/bench"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// CompareChart draws the throughput cells two runs share side by side, A
// and B as bars per cell (events/s, log scale), into the PNG at path; false
// if the runs share none.
func CompareChart(a, b *bench.Report, aName, bName, path string) (bool, error) {
	type cell struct {
		source, backend  string
		detectors, batch int
	}
	bv := map[cell]float64{}
	for _, c := range b.Throughput {
		bv[cell{c.Source, c.Backend, c.Detectors, c.Batch}] = c.EventsPerSec
	}
	var labels []string
	var av, bs plotter.Values
	for _, c := range a.Throughput {
		v, ok := bv[cell{c.Source, c.Backend, c.Detectors, c.Batch}]
		if !ok || c.EventsPerSec <= 0 || v <= 0 {
			continue
		}
		labels = append(labels, fmt.Sprintf("%s %s, %d det., batch %d", c.Source, c.Backend, c.Detectors, c.Batch))
		av, bs = append(av, c.EventsPerSec), append(bs, v)
	}
	if len(labels) == 0 {
		return false, nil
	}
	p := plot.New()
	p.Title.Text = "Throughput, A against B (events/s)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = siTicks{plot.LogTicks{Prec: -1}}
	p.X.Label.Text = "events/s"
	p.Add(plotter.NewGrid())
	lo, hi := av[0], av[0]
	for _, v := range append(append(plotter.Values{}, av...), bs...) {
		lo, hi = min(lo, v), max(hi, v)
	}
	base := lo / 2 // bars start at the axis: a log scale has no zero
	for k, run := range []struct {
		name string
		v    plotter.Values
	}{{"A: " + aName, av}, {"B: " + bName, bs}} {
		var first *plotter.Polygon
		for i, v := range run.v {
			y0 := float64(i) + 0.02 - 0.4*float64(1-k) // A just below its label's line, B just above
			bar, err := plotter.NewPolygon(plotter.XYs{{X: base, Y: y0}, {X: v, Y: y0}, {X: v, Y: y0 + 0.36}, {X: base, Y: y0 + 0.36}})
			if err != nil {
				return false, err
			}
			bar.Color = plotutil.Color(k * 2)
			bar.LineStyle.Width = 0
			p.Add(bar)
			if first == nil {
				first = bar
			}
		}
		p.Legend.Add(run.name, first)
	}
	p.NominalY(labels...)
	p.Legend.Top, p.Legend.Left = true, true
	p.X.Min, p.X.Max = base, hi*2
	return true, savePlot(p, 8*vg.Inch, vg.Length(len(labels))*vg.Points(22)+vg.Inch, path)
}
