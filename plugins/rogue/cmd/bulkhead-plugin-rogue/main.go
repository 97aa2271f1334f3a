// Command bulkhead-plugin-rogue serves the TEST plugin that breaks the
// plugin protocol on command.
package main

import "github.com/bulkhead-sec/bulkhead/plugins/rogue"

func main() { rogue.Serve() }
