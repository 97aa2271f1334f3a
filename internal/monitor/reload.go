package monitor

import (
	"context"

	"github.com/bulkhead-sec/bulkhead/internal/config"
	"github.com/bulkhead-sec/bulkhead/pipeline/dispatch"
	"go.uber.org/zap"
)

// Reload applies the configuration file again (SIGHUP): the new detectors
// are started first, and only if the file is valid and every detector
// starts do they replace the running ones, which then drain their queues.
// Otherwise the running detectors keep running and the log says why.
func (m *Monitor) Reload(path string, out dispatch.FindingFunc, log *zap.Logger) {
	if path == "" {
		log.Warn("SIGHUP: nothing to reload: bulkhead run was started without --config")
		return
	}
	fc, err := config.Load(path, BuiltinNames())
	if err != nil {
		log.Error("SIGHUP: the configuration was not reloaded; the running detectors keep running", zap.Error(err))
		return
	}
	next, err := StartDispatch(fc, false, out, log)
	if err != nil {
		log.Error("SIGHUP: the new detectors did not start; the running detectors keep running", zap.Error(err))
		return
	}
	if err := m.replaceDetectors(context.Background(), next); err != nil {
		log.Warn("SIGHUP: the replaced detectors did not close cleanly", zap.Error(err))
	}
	names := make([]string, 0, len(fc.Detectors))
	for _, d := range fc.Detectors {
		names = append(names, d.Name)
	}
	log.Info("configuration reloaded", zap.String("config", path), zap.Strings("detectors", names))
}
