package fairness

import (
	"encoding/json"
	"math"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// simWindows is what tests/fairness/test_fairness_random_windows.py writes from a simulator run: windows of calls
// (each window one shared pool) as the collector would see them, in wall-clock seconds, and how the collector of
// that run evaluated them.
type simWindows struct {
	WindowS float64 `json:"window_s"`
	Slots   int     `json:"slots"`
	// FlushS: the collector evaluates the rule every FlushS seconds, from the first call until TailS seconds after
	// the last call ended; 0: only at the end of the slot in which the last call ended and once more a slot later.
	FlushS float64 `json:"flush_s"`
	TailS  float64 `json:"tail_s"`
	// SlowdownFloorS is the collector's SlowdownFloor in seconds (0: the default).
	SlowdownFloorS float64 `json:"slowdown_floor_s"`
	Windows        []struct {
		Pool string `json:"pool"`
		// Server and Model as the collector saw them (they seed the permutation test); "sim" and "m" when absent.
		Server string `json:"server"`
		Model  string `json:"model"`
		Calls  []struct {
			Tenant                      string
			Start, End, Wait, Prefill   float64
			TTFT, UncachedInput, Output float64
		} `json:"calls"`
	} `json:"windows"`
	MaxNamedShare float64 `json:"max_named_share"`
}

// TestSimulatorWindows evaluates the noisy-neighbour rule on windows generated from a simulator run with random
// independent loads (LLMOTEL_FAIRNESS_SIM_WINDOWS names the file; skipped without it) as the collector does: every
// call is observed when it ended (its span's arrival, give or take the export's delay), the rule is evaluated at
// every flush, all windows at the same moments on slots aligned to the Unix epoch as the collector's ring, and a
// window counts as named when a tenant of it was named at any evaluation. The share of named windows must stay at
// or below max_named_share. The counts go to LLMOTEL_FAIRNESS_SIM_RESULT when set.
func TestSimulatorWindows(t *testing.T) {
	path := os.Getenv("LLMOTEL_FAIRNESS_SIM_WINDOWS")
	if path == "" {
		t.Skip("LLMOTEL_FAIRNESS_SIM_WINDOWS not set (tests/fairness/test_fairness_random_windows.py sets it)")
	}
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var in simWindows
	require.NoError(t, json.Unmarshal(raw, &in))
	window := time.Duration(in.WindowS * float64(time.Second))
	slot := window / time.Duration(in.Slots)
	at := func(s float64) time.Time { return time.Unix(0, int64(math.Round(s*1e9))) }
	first, last := math.Inf(1), 0.0
	for _, w := range in.Windows {
		for _, c := range w.Calls {
			first, last = math.Min(first, c.Start), math.Max(last, c.End)
		}
	}
	// The evaluations: every flush over the run and its tail, or at the end of the last call's slot and a slot later.
	var evals []time.Time
	if in.FlushS > 0 {
		step := time.Duration(in.FlushS * float64(time.Second))
		for e := at(first).Add(step); !e.After(at(last + in.TailS)); e = e.Add(step) {
			evals = append(evals, e)
		}
	} else {
		end := at(last).UnixNano()
		now := time.Unix(0, end-end%int64(slot)).Add(slot - time.Millisecond)
		evals = []time.Time{now, now.Add(slot)}
	}
	type result struct {
		Windows, Named, Blamed, Significant int
		NamedPools                          []string
	}
	var out result
	for _, w := range in.Windows {
		tr := NewTracker(Options{Window: window, Slots: in.Slots, SlowdownFloor: time.Duration(in.SlowdownFloorS * float64(time.Second))})
		p := Pool{Server: w.Server, Model: w.Model, Region: w.Pool}
		if p.Server == "" && p.Model == "" {
			p.Server, p.Model = "sim", "m"
		}
		calls := make([]Call, 0, len(w.Calls))
		for _, c := range w.Calls {
			calls = append(calls, Call{Tenant: c.Tenant, Pool: p, Start: at(c.Start), End: at(c.End), Wait: c.Wait,
				HasWait: true, WaitMeasured: true, Prefill: c.Prefill, TTFT: c.TTFT, HasTTFT: true,
				UncachedInput: c.UncachedInput, Output: c.Output})
		}
		sort.SliceStable(calls, func(a, b int) bool { return calls[a].End.Before(calls[b].End) })
		named, blamed, significant := false, false, false
		next := 0
		for i, now := range evals {
			for ; next < len(calls) && (i == len(evals)-1 || !calls[next].End.After(now)); next++ {
				tr.Observe(now, calls[next])
			}
			rep := tr.Snapshot(now)
			for _, pr := range rep.Pools {
				for _, tn := range pr.Tenants {
					named = named || tn.Named
					if i == len(evals)-1 { // blame and significance: at the last evaluation
						blamed = blamed || tn.BlameShare > 0
						significant = significant || tn.PValue <= 0.05/float64(len(pr.Tenants))
					}
				}
			}
		}
		out.Windows++
		if named {
			out.Named++
			out.NamedPools = append(out.NamedPools, w.Pool)
		}
		if blamed {
			out.Blamed++
		}
		if significant {
			out.Significant++
		}
	}
	t.Logf("windows %d, with blame %d, significant %d, named %d: %v", out.Windows, out.Blamed, out.Significant, out.Named, out.NamedPools)
	if res := os.Getenv("LLMOTEL_FAIRNESS_SIM_RESULT"); res != "" {
		b, err := json.Marshal(out)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(res, b, 0o600))
	}
	require.LessOrEqual(t, float64(out.Named), in.MaxNamedShare*float64(out.Windows), "named in %d of %d windows", out.Named, out.Windows)
}
