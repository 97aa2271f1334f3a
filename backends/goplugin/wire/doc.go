// Package wire is the protocol between the monitor and a detector plugin:
// the gRPC service in detector.proto; the flat batch layout every batch of
// events travels in, through the shm ring or on the gRPC stream (flat.go:
// fixed offsets, strings viewed in place); the compact stream codec that
// recordings keep (codec.go); the ring record header (ring.go); the bounds
// a plugin's answers are read against (limits.go); and conversions to and
// from the contract's types in pipeline/detection. It is not a public API.
package wire
