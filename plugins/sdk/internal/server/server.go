package server

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/bulkhead-sec/bulkhead/backends/goplugin/shm"
	"github.com/bulkhead-sec/bulkhead/backends/goplugin/wire"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/detect"
	"go.uber.org/zap"
)

// Server answers the monitor for one detector.
type Server struct {
	wire.UnimplementedDetectorServer
	d   detect.Detector
	log *zap.Logger

	ring     *shm.Consumer // batches from the monitor's ring (nil: from the stream)
	ringBusy sync.Mutex    // one stream reads the ring
}

// New serves d; the detector logs through log.
func New(d detect.Detector, log *zap.Logger) *Server { return &Server{d: d, log: log} }

func (s *Server) Describe(context.Context, *wire.DescribeRequest) (*wire.Definition, error) {
	return wire.DefinitionToProto(s.d.Definition()), nil
}

func (s *Server) Init(ctx context.Context, req *wire.InitRequest) (*wire.InitResponse, error) {
	if err := s.d.Init(ctx, detect.Config(req.ConfigJson), s.log.Named(s.d.Definition().Name)); err != nil {
		return nil, err
	}
	return &wire.InitResponse{}, nil
}

func (s *Server) Close(ctx context.Context, _ *wire.CloseRequest) (*wire.CloseResponse, error) {
	return &wire.CloseResponse{}, s.d.Close(ctx)
}

// Stream answers each batch with one result, in order. The batch's bytes
// and the decoded events reuse their memory from one batch to the next.
func (s *Server) Stream(stream wire.Detector_StreamServer) error {
	if s.ring != nil {
		return s.ringStream(stream)
	}
	var (
		batch wire.InBatch
		dec   wire.FlatDecoder
	)
	for {
		if err := stream.RecvMsg(&batch); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := stream.Send(s.process(stream.Context(), batch.Seq, batch.Events, &dec)); err != nil {
			return err
		}
	}
}

// Process answers one batch: the one-call-per-batch mode.
func (s *Server) Process(ctx context.Context, batch *wire.Batch) (*wire.Result, error) {
	var dec wire.FlatDecoder
	return s.process(ctx, batch.Seq, batch.Events, &dec), nil
}

func (s *Server) process(ctx context.Context, seq uint64, batch []byte, dec *wire.FlatDecoder) *wire.Result {
	res := &wire.Result{Seq: seq}
	events, err := dec.Decode(batch)
	if err != nil {
		res.Errors++
		res.LastError = []byte(err.Error())
		return res
	}
	if dec.Redelivered() {
		ctx = detect.WithRedelivered(ctx)
	}
	wire.Evaluate(ctx, s.d, events, res)
	return res
}
