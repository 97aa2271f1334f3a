// Package detect is the contract between bulkhead and a detector: what a
// detector declares (Definition), what it implements (Detector) and what
// it reports (Finding). Plugin authors use it through package sdk, which
// re-exports these names, or directly.
//
// Its names are those of package pipeline/detection, where the monitor
// keeps the contract, re-exported unchanged: each type here is an alias
// of the one there (a detect.Finding is a detection.Finding, not a copy),
// each function forwards to it. The fields and methods of each type are
// documented there; what a detector must know is repeated here.
package detect
