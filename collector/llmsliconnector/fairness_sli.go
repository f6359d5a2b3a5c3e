package llmsliconnector

import (
	"go.opentelemetry.io/collector/pdata/pmetric"

	"time"

	"github.com/llmotel/llmotel/collector/llmsliconnector/internal/fairness"
	sc "github.com/llmotel/llmotel/collector/llmsliconnector/internal/semconv"
)

// waitPhases collects what the fairness tracker needs from a call's phase spans: when its queue
// wait began (after client retries), how long it lasted, whether that was measured, and how long the
// prefill after it took (where the input tokens' service goes).
type waitPhases struct {
	retries, queue, prefill float64
	hasQueue, measured      bool
}

func (w *waitPhases) add(name, source string, duration float64) {
	switch name {
	case sc.AttrPhaseNameRetries:
		w.retries += duration
	case sc.AttrPhaseNamePrefill:
		w.prefill += duration
	case sc.AttrPhaseNameQueue:
		w.queue += duration
		w.hasQueue = true
		// Server or client timing is a measurement; anything else (estimated) is a model's guess.
		w.measured = source == sc.AttrPhaseSourceServer || source == sc.AttrPhaseSourceClient
	}
}

// call completes c with the wait; a call without a queue phase has no known wait.
func (w *waitPhases) call(c fairness.Call) fairness.Call {
	c.WaitOffset, c.Wait, c.HasWait, c.WaitMeasured = w.retries, w.queue, w.hasQueue, w.measured
	if w.measured {
		// An estimated split of TTFT between queue and prefill can book a huge prompt's own prefill as its wait;
		// placing the input tokens over that estimate would move its service away from when it ran.
		c.Prefill = w.prefill
	}
	return c
}

// Values of llmotel.sli.queue.source.
const (
	queueMeasured  = "measured"
	queueEstimated = "estimated"
)

func (f FairnessConfig) trackerOptions(win time.Duration, slots int) fairness.Options {
	return fairness.Options{Window: win, Slots: slots,
		Weights:    fairness.Weights{Input: f.InputTokenWeight, Output: f.OutputTokenWeight},
		MaxTenants: f.MaxTenants, MaxCalls: f.MaxCalls, SlowdownFloor: f.SlowdownFloor, Permutations: f.Permutations, Alpha: f.Alpha,
		AbnormalSlowdown: f.AbnormalSlowdown, Persist: f.PersistEvaluations}
}

// appendFairness exports the window's fairness picture: fleet shares and Jain's index, and per shared
// pool the Jain index, each backlogged tenant's service ratio, per-call slowdown quantiles by queue
// source, blame shares and the noisy-neighbour verdict. Called under c.mu.
func (c *llmSLI) appendFairness(ms pmetric.MetricSlice, now time.Time) {
	rep := c.fair.Snapshot(now)
	if len(rep.Tenants) == 0 {
		return
	}
	share := gauge(ms, sc.GaugeSLITenantServiceShare)
	demand := gauge(ms, sc.GaugeSLITenantDemandShare)
	one := make([]string, 1)
	for _, t := range rep.Tenants {
		one[0] = t.Tenant
		point(share, now, t.ServiceShare, one)
		point(demand, now, t.DemandShare, one)
	}
	point(gauge(ms, sc.GaugeSLIFairnessJainIndex), now, rep.FleetJain, nil)

	jain := gauge(ms, sc.GaugeSLIPoolFairnessJainIndex)
	var ratio, p50, p95, blame, noisy gaugePoints
	lazy := func(g *gaugePoints, d sc.GaugeDescriptor) gaugePoints {
		if g.dims == nil {
			*g = gauge(ms, d)
		}
		return *g
	}
	v := make([]string, 5)
	for _, pr := range rep.Pools {
		v[0], v[1], v[2] = pr.Pool.Server, pr.Pool.Model, pr.Pool.Region
		point(jain, now, pr.Jain, v[:3])
		for _, t := range pr.Tenants {
			v[3] = t.Tenant
			if t.Backlogged {
				point(lazy(&ratio, sc.GaugeSLITenantServiceRatio), now, t.Ratio, v[:4])
			}
			for _, s := range t.Slowdowns {
				v[4] = queueEstimated
				if s.Measured {
					v[4] = queueMeasured
				}
				point(lazy(&p50, sc.GaugeSLITenantSlowdownP50), now, s.P50, v)
				point(lazy(&p95, sc.GaugeSLITenantSlowdownP95), now, s.P95, v)
			}
			if t.HasBlame && t.BlameShare > 0 {
				// Every tenant with blame gets a point, 0 or 1, so a verdict that lapses is refreshed, not left stale.
				point(lazy(&blame, sc.GaugeSLITenantBlameShare), now, t.BlameShare, v[:4])
				named := 0.0
				if t.Named {
					named = 1
				}
				point(lazy(&noisy, sc.GaugeSLINoisyNeighbor), now, named, v[:4])
			}
		}
	}
}
