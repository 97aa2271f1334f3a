// Package bench is the data model of `bulkhead bench`: what one run
// measured (Report, written as JSON), the floors the project holds itself
// to, the sanity checks a run must pass whatever the machine (Check), and
// the comparison of two runs (Compare). It measures nothing itself: the
// runners live in internal/bench/suite, the Markdown report and
// charts in internal/bench/report.
package bench
