package fairness

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// simTruth is one finished call of the simulator's /truth (tests/fairness/fairness_support.py): what the collector
// sees (wall clock) and who occupied its replica while it waited (simulated seconds).
type simTruth struct {
	Tenant, Region string
	InputTokens    float64            `json:"input_tokens"`
	CachedTokens   float64            `json:"cached_tokens"`
	OutputTokens   float64            `json:"output_tokens"`
	Occupied       map[string]float64 `json:"occupied_while_waiting_s"`
	Sim            struct {
		Queue float64 `json:"queue_s"`
	} `json:"sim"`
	Wall struct {
		Queue   float64 `json:"queue_s"`
		Prefill float64 `json:"prefill_server_s"`
		TTFT    float64 `json:"ttft_s"`
	} `json:"wall"`
	WallTS struct {
		Arrival float64 `json:"arrival"`
		End     float64 `json:"end"`
	} `json:"wall_ts"`
}

// blameFigures are one tenant's shares of the other tenants' waiting: wait-weighted (as llmotel.sli.tenant.blame_share)
// and the median over the others' waiting calls of its share of each call's wait.
type blameFigures struct{ weighted, median float64 }

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// TestBlamePerCallAgainstSimulatorTruth compares, per call that waited, the share of its wait each other tenant is
// blamed for with the simulator's occupancy truth: under llm_sli's rule (occupancy above the water-filling share)
// and under plain occupancy (o_t / all service during the wait, the waiting tenant's own included).
// LLMOTEL_FAIRNESS_SIM_TRUTHS names a JSON list of the finished calls' /truth records of one run of
// tests/fairness/scenarios.yaml (the simulator's SimServer and `llmotel_sim.cli load --no-instrument`, then
// json.dumps(sim.truths())); skipped without it. Issue #18's acceptance, read per call: for every tenant with at
// least 5 of the others' waiting calls, the median over those calls of |share blamed - occupancy truth| is at most
// 0.1 under the rule. Three runs (2026-12-06): at most 0.063 under the rule, 0.021 under plain occupancy.
func TestBlamePerCallAgainstSimulatorTruth(t *testing.T) {
	path := os.Getenv("LLMOTEL_FAIRNESS_SIM_TRUTHS")
	if path == "" {
		t.Skip("LLMOTEL_FAIRNESS_SIM_TRUTHS not set")
	}
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var truths []simTruth
	require.NoError(t, json.Unmarshal(raw, &truths))
	byRegion := map[string][]simTruth{}
	for _, tr := range truths {
		byRegion[tr.Region] = append(byRegion[tr.Region], tr)
	}
	regions := make([]string, 0, len(byRegion))
	for r := range byRegion {
		regions = append(regions, r)
	}
	sort.Strings(regions)
	compared := 0
	at := func(s float64) time.Time { return time.Unix(0, 0).Add(time.Duration(s * float64(time.Second))) }
	for _, region := range regions {
		ts := byRegion[region]
		tr := NewTracker(Options{})
		p := Pool{Server: "sim", Model: "m", Region: region}
		calls := make([]call, len(ts))
		tenants := map[string]bool{}
		for i, c := range ts {
			tenants[c.Tenant] = true
			calls[i] = tr.convert(Call{Tenant: c.Tenant, Pool: p, Start: at(c.WallTS.Arrival), End: at(c.WallTS.End),
				Wait: c.Wall.Queue, HasWait: true, WaitMeasured: true, Prefill: c.Wall.Prefill, TTFT: c.Wall.TTFT,
				HasTTFT: true, UncachedInput: c.InputTokens - c.CachedTokens, Output: c.OutputTokens})
		}
		type perCall struct{ truth, rule, occ []float64 }
		type weighted struct{ truth, rule, occ, wait, simWait float64 }
		pc := map[string]*perCall{}
		wt := map[string]*weighted{}
		for k := range tenants {
			pc[k], wt[k] = &perCall{}, &weighted{}
		}
		eachWait(calls, func(vi int, w waitSplit) {
			v, truth := calls[vi], ts[vi]
			if truth.Sim.Queue <= 0.010 { // as true_blame: a wait under 10 ms is none
				return
			}
			totalExcess, all := 0.0, w.own
			for i := range w.others {
				totalExcess += math.Max(0, w.occ[i]-w.share[i])
				all += w.occ[i]
			}
			for k := range tenants {
				if k == v.tenant {
					continue
				}
				rule, occ := 0.0, 0.0
				for i, name := range w.others {
					if name == k {
						if totalExcess > 0 {
							rule = math.Max(0, w.occ[i]-w.share[i]) / totalExcess
						}
						if all > 0 {
							occ = w.occ[i] / all
						}
					}
				}
				share := truth.Occupied[k] / truth.Sim.Queue
				pc[k].truth = append(pc[k].truth, share)
				pc[k].rule = append(pc[k].rule, rule)
				pc[k].occ = append(pc[k].occ, occ)
				wt[k].truth += truth.Occupied[k]
				wt[k].simWait += truth.Sim.Queue
				wt[k].rule += rule * v.wait
				wt[k].occ += occ * v.wait
				wt[k].wait += v.wait
			}
		})
		names := make([]string, 0, len(tenants))
		for k := range tenants {
			if len(pc[k].truth) > 0 {
				names = append(names, k)
			}
		}
		sort.Strings(names)
		for _, k := range names {
			c, w := pc[k], wt[k]
			errRule, errOcc := make([]float64, len(c.truth)), make([]float64, len(c.truth))
			for i := range c.truth {
				errRule[i] = math.Abs(c.rule[i] - c.truth[i])
				errOcc[i] = math.Abs(c.occ[i] - c.truth[i])
			}
			compared += len(c.truth)
			if len(c.truth) >= 5 {
				require.LessOrEqual(t, median(errRule), 0.1, "%s %s: per-call blame off the occupancy truth", region, k)
			}
			t.Log(strings.Join([]string{
				fmt.Sprintf("%-7s %-10s calls %3d", region, k, len(c.truth)),
				fmt.Sprintf("truth weighted %.3f median %.3f", w.truth/w.simWait, median(c.truth)),
				fmt.Sprintf("rule weighted %.3f median %.3f |err| median %.3f", w.rule/w.wait, median(c.rule), median(errRule)),
				fmt.Sprintf("occupancy weighted %.3f median %.3f |err| median %.3f", w.occ/w.wait, median(c.occ), median(errOcc)),
			}, " | "))
		}
	}
	require.Positive(t, compared, "no call waited: nothing to compare")
}
