// Package report presents a bench run: a table for the terminal (Text) and
// a Markdown report with PNG charts drawn with gonum.org/v1/plot
// (Markdown): throughput against batch size and detector count per
// backend, latency percentiles, and a resilience timeline per fault.
package report
