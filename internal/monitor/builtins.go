package monitor

import (
	"maps"
	"slices"

	"github.com/bulkhead-sec/bulkhead/plugins/chaos"
	"github.com/bulkhead-sec/bulkhead/plugins/credaccess"
	"github.com/bulkhead-sec/bulkhead/plugins/example"
	"github.com/bulkhead-sec/bulkhead/plugins/kernelload"
	"github.com/bulkhead-sec/bulkhead/plugins/outbound"
	"github.com/bulkhead-sec/bulkhead/plugins/persistence"
	"github.com/bulkhead-sec/bulkhead/plugins/privesc"
	"github.com/bulkhead-sec/bulkhead/plugins/probe"
	"github.com/bulkhead-sec/bulkhead/plugins/ptrace"
	"github.com/bulkhead-sec/bulkhead/plugins/rules"
	"github.com/bulkhead-sec/bulkhead/plugins/sdk/detect"
	"github.com/bulkhead-sec/bulkhead/plugins/tmpexec"
	"github.com/bulkhead-sec/bulkhead/plugins/webshell"
)

// Builtins are the detectors compiled into bulkhead, for the inproc
// backend. Each also has a plugin binary for goplugin.
func Builtins() map[string]func() detect.Detector {
	return map[string]func() detect.Detector{
		"example":     func() detect.Detector { return example.New() },
		"webshell":    func() detect.Detector { return webshell.New() },
		"credaccess":  func() detect.Detector { return credaccess.New() },
		"tmpexec":     func() detect.Detector { return tmpexec.New() },
		"privesc":     func() detect.Detector { return privesc.New() },
		"kernelload":  func() detect.Detector { return kernelload.New() },
		"ptrace":      func() detect.Detector { return ptrace.New() },
		"outbound":    func() detect.Detector { return outbound.New() },
		"persistence": func() detect.Detector { return persistence.New() },
		"rules":       func() detect.Detector { return rules.New() },
		"chaos":       func() detect.Detector { return chaos.New() }, // TEST ONLY: fails on command
		"probe":       func() detect.Detector { return probe.New() }, // BENCHMARKS: reports a sample of events
	}
}

// BuiltinNames are the names of Builtins, sorted: what a configuration's
// builtin: may be (config.Load).
func BuiltinNames() []string {
	return slices.Sorted(maps.Keys(Builtins()))
}
