package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/bulkhead-sec/bulkhead/internal/bench"
	"github.com/bulkhead-sec/bulkhead/internal/bench/report"
)

// benchCompareCommand is `bulkhead bench compare A.json B.json`.
func benchCompareCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	chart := fs.String("chart", "", "also draw the throughput of both runs side by side into this PNG `file`")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: bulkhead bench compare [--chart FILE.png] A.json B.json\n\nCompares two runs of bulkhead bench (their report.json): every figure of A beside B's, with the change.\n\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usageErr("compare needs two reports: bulkhead bench compare A.json B.json (each a report.json of bulkhead bench)")
	}
	a, err := bench.Read(fs.Arg(0))
	if err != nil {
		return err
	}
	b, err := bench.Read(fs.Arg(1))
	if err != nil {
		return err
	}
	bench.Compare(stdout, a, b, fs.Arg(0), fs.Arg(1))
	if *chart != "" {
		drawn, err := report.CompareChart(a, b, fs.Arg(0), fs.Arg(1), *chart)
		if err != nil {
			return fmt.Errorf("--chart: %w", err)
		}
		if !drawn {
			return fmt.Errorf("--chart: the two runs share no throughput cell to draw")
		}
		fmt.Fprintf(stdout, "\nchart: %s\n", *chart)
	}
	return nil
}
