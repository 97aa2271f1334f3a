// Package pluginlog bounds what a detector running apart from the monitor
// (a goplugin process, a wasm module) puts in the monitor's log: every
// string escaped for a terminal and cut, and lines rate-limited in count
// and bytes, what is over the rate dropped and counted. Answers counts
// what its answers carried besides the findings kept (errors, protocol
// breaches) and logs each kind at most every 10 seconds.
package pluginlog
