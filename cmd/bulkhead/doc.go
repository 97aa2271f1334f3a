// Command bulkhead is the monitor's one binary. Its subcommands wire the
// pipeline packages together explicitly:
//
//	bulkhead run            capture kernel events and write them out
//	bulkhead bench capture  measure what capture costs the traced workload
//	bulkhead version        print version, Go and kernel
//
// Run `bulkhead <command> -h` for a command's flags.
package main
