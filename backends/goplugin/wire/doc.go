// Package wire is the protocol between the monitor and a detector plugin:
// the gRPC service in detector.proto, a packed codec for event batches
// (codec.go: one bytes field per batch instead of one message per event),
// and conversions to and from the public types in plugins/sdk/detect. It is
// not a public API.
package wire
