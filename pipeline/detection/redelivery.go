package detection

import "context"

type redeliveredKey struct{}

// Redelivered reports whether the events OnEvent is handling were sent
// before: to a process of the plugin that died or hung with them in
// flight, or in a batch split to find a poison event. Delivery is at least
// once; a detector that must not act twice on one event (count it, alert
// on it) checks this. Run in process, events are never redelivered.
func Redelivered(ctx context.Context) bool {
	v, _ := ctx.Value(redeliveredKey{}).(bool)
	return v
}

// WithRedelivered returns ctx marked as carrying redelivered events (the
// SDK does this for a batch the monitor sent again; tests may too).
func WithRedelivered(ctx context.Context) context.Context {
	return context.WithValue(ctx, redeliveredKey{}, true)
}
