package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/bulkhead-sec/bulkhead/internal/bench"
)

// benchCompareCommand is `bulkhead bench compare A.json B.json`.
func benchCompareCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: bulkhead bench compare A.json B.json\n\nCompares two runs of bulkhead bench (their report.json): every figure of A beside B's, with the change.\n")
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
	return nil
}
