package fairness

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// simWindows is what tests/fairness/test_fairness_random_windows.py writes from a simulator run: windows of calls
// (each window one shared pool) as the collector would see them, in wall-clock seconds.
type simWindows struct {
	WindowS float64 `json:"window_s"`
	Slots   int     `json:"slots"`
	Windows []struct {
		Pool  string `json:"pool"`
		Calls []struct {
			Tenant                      string
			Start, End, Wait, Prefill   float64
			TTFT, UncachedInput, Output float64
		} `json:"calls"`
	} `json:"windows"`
	MaxNamedShare float64 `json:"max_named_share"`
}

// TestSimulatorWindows evaluates the noisy-neighbour rule on windows generated from a simulator run with random
// independent loads (LLMOTEL_FAIRNESS_SIM_WINDOWS names the file; skipped without it): each window is observed,
// evaluated at its end and once more a slot later (persistence), and the share of windows with a named tenant must
// stay at or below max_named_share. The counts go to LLMOTEL_FAIRNESS_SIM_RESULT when set.
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
	type result struct {
		Windows, Named, Blamed, Significant int
		NamedPools                          []string
	}
	var out result
	for _, w := range in.Windows {
		tr := NewTracker(Options{Window: window, Slots: in.Slots})
		last := 0.0
		for _, c := range w.Calls {
			last = max(last, c.End)
		}
		// Slot-aligned like the collector's ring, with every call inside the window.
		now := time.Unix(0, 0).Add(time.Duration(last * float64(time.Second))).Truncate(slot).Add(slot - time.Millisecond)
		p := Pool{Server: "sim", Model: "m", Region: w.Pool}
		for _, c := range w.Calls {
			at := func(s float64) time.Time { return time.Unix(0, 0).Add(time.Duration(s * float64(time.Second))) }
			tr.Observe(now, Call{Tenant: c.Tenant, Pool: p, Start: at(c.Start), End: at(c.End), Wait: c.Wait,
				HasWait: true, WaitMeasured: true, Prefill: c.Prefill, TTFT: c.TTFT, HasTTFT: true,
				UncachedInput: c.UncachedInput, Output: c.Output})
		}
		tr.Snapshot(now)
		rep := tr.Snapshot(now.Add(slot))
		out.Windows++
		named, blamed, significant := false, false, false
		for _, pr := range rep.Pools {
			for _, tn := range pr.Tenants {
				named = named || tn.Named
				blamed = blamed || tn.BlameShare > 0
				significant = significant || tn.PValue <= 0.05/float64(len(pr.Tenants))
			}
		}
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
