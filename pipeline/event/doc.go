// Package event defines the typed events that flow through bulkhead's
// pipeline: a common Header, one payload struct per kind, and the Process
// context that pipeline/enrich attaches.
//
// Events decoded from the ring buffer borrow their strings from the reader's
// buffer: they are valid until the next record is read. Code that keeps an
// event past that point calls Clone.
package event
