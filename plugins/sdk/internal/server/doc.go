// Package server is the plugin side of the wire protocol: it answers the
// monitor's calls on a detector's behalf. sdk.Serve runs it in a plugin
// process; sdktest runs it in memory.
package server
