// Package status is the status file a running monitor keeps for
// `bulkhead plugins`: each detector's state, restarts, kills, protocol
// violations, deliveries and protections, rewritten every second (Keep),
// one file per monitor (Path) in the enclave run-time directory.
//
// The file is read back by another process (Read), which trusts it only
// as far as its owner and directory allow, and bounds it; its texts come
// from plugins and are escaped before they reach a terminal (JSON).
package status
