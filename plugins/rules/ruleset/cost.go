package ruleset

import (
	"fmt"

	"github.com/google/cel-go/checker"
)

// CostBudget bounds what one condition may cost per event, in CEL's cost
// units (about one per operation; a comprehension costs its body times
// the list's length). A condition whose worst case, estimated at load,
// exceeds it is refused with the estimate in the error; at run time an
// evaluation that exceeds it stops and counts as an error (not a match), so
// no rule can hang the detector even where the estimate was wrong.
//
// The default rules estimate at most 6,397 (persistence_file_write); a
// comprehension over argv comparing each item with the path about
// 250,000; a nested one over argv in the hundreds of millions. An
// evaluation stopped at the budget has run for about a millisecond.
const CostBudget = 1_000_000

// The largest values a field can hold, for the estimate: paths are at
// most PATH_MAX bytes, argv at most 1,024 bytes in up to 512 items, a
// command name 16 bytes, the ancestry 16 binaries; the exec environment
// capture keeps 4,096 bytes of NAME=value entries of at most 1,023 bytes
// each (bpf/bulkhead.c's ENV_OUT and ENV_READ), so at most 1,365 of "X=".
const (
	maxStringSize = 4096
	maxArgsSize   = 1024
	maxArgs       = maxArgsSize / 2
	maxCommSize   = 16
	maxAncestors  = 16
	maxEnvItem    = 1023
	maxEnv        = 4096 / 3
)

// fieldSizes are the fields whose bound is not maxStringSize: lists by
// item count, strings by bytes.
var fieldSizes = map[string]uint64{
	"args": maxArgs, "ancestors": maxAncestors,
	"comm": maxCommSize, "parent_comm": maxCommSize, "cmdline": maxArgsSize,
	"kind": 16, "container_id": 64, "addr": 64, "peer_addr": 64,
	"env": maxEnv, "namespaces": 8, "mode_bits": 3,
}

// sizeEstimator tells cel-go how large each variable can be. Without it
// every list and string counts as unbounded, and every comprehension as
// infinitely expensive.
type sizeEstimator struct{ lists map[string][]string }

func (e sizeEstimator) EstimateSize(n checker.AstNode) *checker.SizeEstimate {
	path := n.Path()
	if len(path) == 0 {
		return nil
	}
	bounded := func(max uint64) *checker.SizeEstimate { return &checker.SizeEstimate{Min: 0, Max: max} }
	if items, ok := e.lists[path[0]]; ok {
		if len(path) == 1 {
			n := uint64(len(items))
			return &checker.SizeEstimate{Min: n, Max: n}
		}
		longest := 0
		for _, it := range items {
			longest = max(longest, len(it))
		}
		return bounded(uint64(longest))
	}
	if len(path) > 1 && path[0] == "args" { // an item of argv
		return bounded(maxArgsSize)
	}
	if len(path) > 1 && path[0] == "env" { // an item of the environment
		return bounded(maxEnvItem)
	}
	if len(path) == 1 {
		if n, ok := fieldSizes[path[0]]; ok {
			return bounded(n)
		}
	}
	return bounded(maxStringSize)
}

func (sizeEstimator) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

// errTooCostly says what the estimate was and what to do.
func errTooCostly(est checker.CostEstimate) error {
	return fmt.Errorf("the condition may cost up to %d per event, over the budget of %d: "+
		"avoid nesting comprehensions (exists, all, map, filter) over args, ancestors or long lists, "+
		"or test a cheaper condition first (kind, comm, path prefix)", est.Max, CostBudget)
}
