package bench

import (
	"math"
	"slices"
)

// Percentiles summarise a latency distribution, in microseconds.
type Percentiles struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

// Quantiles are the points Percentiles reports, in order.
var Quantiles = []float64{0.5, 0.9, 0.99, 0.999, 1}

// PercentilesOf is the exact (nearest-rank) percentiles of samples; it
// sorts them.
func PercentilesOf(samples []float64) Percentiles {
	if len(samples) == 0 {
		return Percentiles{}
	}
	slices.Sort(samples)
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(samples)))) - 1
		return samples[max(0, min(i, len(samples)-1))]
	}
	return Percentiles{P50: at(0.5), P90: at(0.9), P99: at(0.99), P999: at(0.999), Max: at(1)}
}

// Values are the percentiles in the order of Quantiles.
func (p Percentiles) Values() []float64 { return []float64{p.P50, p.P90, p.P99, p.P999, p.Max} }

// Median is the middle of values (0 if none), without changing them.
func Median(values []float64) float64 {
	if len(values) == 0 {
		return 0
	}
	s := slices.Clone(values)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Max is the largest of values (0 if none).
func Max(values []float64) float64 {
	if len(values) == 0 {
		return 0
	}
	return slices.Max(values)
}
