// Package sdk is how to write a bulkhead detector.
//
// A detector is a Go value that implements Detector: it declares the event
// kinds it wants (Definition), is configured once (Init), sees each event
// (OnEvent) and returns Findings. The same value runs inside the monitor
// (backend "inproc", fastest, but its crash is the monitor's crash) or as
// its own process (backend "goplugin": supervised, restarted, isolated).
// For the second, its binary's main is one line:
//
//	func main() { sdk.Serve(mydetector.New()) }
//
// Handshakes, gRPC and the wire format stay inside Serve. Package sdktest
// runs a detector through the same wire path in memory, for tests. See
// plugins/example for a complete detector, and docs/plugins.md for
// writing, building, testing and loading one.
package sdk
