// Package pluginlog bounds what a detector running apart from the monitor
// (a goplugin process, a wasm module) puts in the monitor's log: every
// string escaped for a terminal and cut, and lines rate-limited in count
// and bytes, what is over the rate dropped and counted.
package pluginlog
