package wire

import (
	"context"
	"fmt"

	"github.com/bulkhead-sec/bulkhead/pipeline/detection"
	"github.com/bulkhead-sec/bulkhead/pipeline/event"
)

// Evaluate is the detector's side of a batch, wherever it runs (a plugin
// process, a wasm module): each event to d.OnEvent, in order, and the
// findings into res as indexes into the batch.
//
// Errors counts events, not failures: one per event whose OnEvent failed
// or whose findings could not be sent (the monitor refuses more errors
// than events). Findings over the monitor's per-batch bound are not sent:
// they would be dropped there, and a result too big for it would get the
// detector killed.
func Evaluate(ctx context.Context, d detection.Detector, events []event.Event, res *Result) {
	maxFindings := DefaultLimits().MaxFindings(len(events))
	for i := range events {
		found, err := d.OnEvent(ctx, &events[i])
		failed := err != nil
		if failed {
			res.LastError = []byte(err.Error())
		}
		if over := len(res.Findings) + len(found) - maxFindings; over > 0 {
			failed = true
			res.LastError = fmt.Appendf(nil, "%d findings over the limit of %d for a batch of %d events were not sent", over, maxFindings, len(events))
			found = found[:max(0, len(found)-over)]
		}
		for _, f := range found {
			p, err := FindingToProto(f, events)
			if err != nil {
				failed = true
				res.LastError = []byte(err.Error())
				continue
			}
			res.Findings = append(res.Findings, p)
		}
		if failed {
			res.Errors++
		}
	}
}
