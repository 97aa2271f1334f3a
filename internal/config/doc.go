// Package config is the monitor's configuration file: its YAML model
// (File: dispatch, enclave, detectors, export), the defaults a missing
// setting takes, the checks a file must pass before anything starts, and
// the error messages that say, in the file's words, what is wrong and
// where.
//
// Load reads and checks a file; nothing here starts a detector. The
// detectors compiled into the binary are the caller's to name (Load's
// builtins), so the model does not depend on them.
package config
