// Package detect is the contract between bulkhead and a detector: what a
// detector declares (Definition), what it implements (Detector) and what
// it reports (Finding). Plugin authors use it through package sdk, which
// re-exports these names; the backends use it directly.
package detect
