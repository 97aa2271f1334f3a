// Package sdktest tests a detector the way the monitor runs it as a
// plugin, in memory: events are encoded, sent on the gRPC stream to the
// SDK's server, decoded, handed to the detector, and its findings come back
// over the wire. What passes here behaves the same under the goplugin
// backend; calling OnEvent directly cannot show, for instance, that a
// finding's Fields do not encode.
//
//	h, err := sdktest.Start(t, mydetector.New(), `{"threshold": 3}`)
//	if err != nil { t.Fatal(err) }
//	findings, err := h.Send(ev1, ev2)
package sdktest
