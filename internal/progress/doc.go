// Package progress draws a progress bar for long runs such as `bulkhead
// bench`: redrawn in place on a terminal, one plain line per step
// otherwise (CI logs, files).
package progress
