// Package fairness measures how evenly an LLM fleet serves its tenants over a sliding window:
// weighted service (VTC), shares of service and demand, p95 TTFT slowdown against the fleet,
// Jain's fairness index, and the noisy neighbour. Method in collector/README.md ("Fairness").
package fairness

import (
	"math"
	"sort"
	"time"

	"github.com/llmotel/llmotel/collector/llmsliconnector/internal/window"
)

// Weights turn tokens into service units: the Virtual Token Counter charges input and output
// tokens differently (default 1 and 2).
type Weights struct {
	Input  float64
	Output float64
}

// MinSamples is the fewest TTFT samples a tenant needs in the window for a slowdown value:
// a p95 of fewer points says more about luck than about the fleet.
const MinSamples = 5

type tenantSlot struct {
	service, demand float64
	ttft            sketch
	ttftSum         float64
	ttftN           float64
}

// Tracker holds per-tenant, per-slot aggregates. Bounded in tenants; excess tenants are dropped
// and counted in Dropped. Not safe for concurrent use.
type Tracker struct {
	ring       window.Ring
	slots      []map[string]*tenantSlot
	weights    Weights
	maxTenants int
	Dropped    int64
	Late       int64
}

// NewTracker returns a tracker over window split into slots, holding at most maxTenants (0: unlimited).
func NewTracker(win time.Duration, slots int, w Weights, maxTenants int) *Tracker {
	t := &Tracker{ring: window.NewRing(win, slots), weights: w, maxTenants: maxTenants}
	t.slots = make([]map[string]*tenantSlot, t.ring.Slots())
	return t
}

func (t *Tracker) reset(i int) { t.slots[i] = map[string]*tenantSlot{} }

// Observe records one request of tenant that started at (placed in that slot: the noisy-neighbour
// correlation compares load and latency at the time they happened, not when the spans arrived), with its
// tokens (0 when it failed) and, when hasTTFT, its TTFT in seconds. Requests older than the window are
// dropped and counted in Late.
func (t *Tracker) Observe(now, at time.Time, tenant string, inputTokens, outputTokens, ttft float64, hasTTFT bool) {
	i, ok := t.ring.IndexAt(now, at, t.reset)
	if !ok {
		t.Late++
		return
	}
	ts := t.slots[i][tenant]
	if ts == nil {
		if t.maxTenants > 0 && len(t.slots[i]) >= t.maxTenants {
			t.Dropped++
			return
		}
		ts = &tenantSlot{}
		t.slots[i][tenant] = ts
	}
	ts.demand++
	ts.service += t.weights.Input*inputTokens + t.weights.Output*outputTokens
	if hasTTFT && ttft >= 0 && !math.IsInf(ttft, 0) {
		ts.ttft.add(ttft)
		ts.ttftSum += ttft
		ts.ttftN++
	}
}

// TenantReport is one tenant's fairness figures over the window.
type TenantReport struct {
	Tenant       string
	Service      float64 // weighted tokens served in the window
	Demand       float64 // requests submitted in the window
	ServiceShare float64
	DemandShare  float64
	P95TTFT      float64
	Slowdown     float64 // P95TTFT / fleet P95TTFT; valid when HasSlowdown
	HasSlowdown  bool
}

// TenantScore is how well one tenant's load explains the others' slowdown, in [0, 1].
type TenantScore struct {
	Tenant string
	Score  float64
}

// Report is the window's fairness picture.
type Report struct {
	Tenants    []TenantReport // sorted by tenant
	Jain       float64        // valid when HasJain
	HasJain    bool
	Noisy      string // the noisy neighbour (top score); valid when HasNoisy
	NoisyScore float64
	HasNoisy   bool
	// Explains holds every tenant's score with at least 3 usable slots, sorted by tenant: exporting them all
	// keeps a downstream topk(1) correct (a tenant that was top earlier is refreshed, not left stale).
	Explains []TenantScore
}

// Snapshot computes the report for the window ending at now.
func (t *Tracker) Snapshot(now time.Time) Report {
	t.ring.Advance(now, t.reset)
	totals := map[string]*tenantSlot{}
	var fleet tenantSlot
	for _, slot := range t.slots {
		for name, ts := range slot {
			agg := totals[name]
			if agg == nil {
				agg = &tenantSlot{}
				totals[name] = agg
			}
			agg.service += ts.service
			agg.demand += ts.demand
			agg.ttft.merge(&ts.ttft)
			agg.ttftSum += ts.ttftSum
			agg.ttftN += ts.ttftN
			fleet.service += ts.service
			fleet.demand += ts.demand
			fleet.ttft.merge(&ts.ttft)
			fleet.ttftSum += ts.ttftSum
			fleet.ttftN += ts.ttftN
		}
	}
	names := make([]string, 0, len(totals))
	for name := range totals {
		names = append(names, name)
	}
	sort.Strings(names)

	var rep Report
	fleetP95 := fleet.ttft.quantile(0.95)
	var sumX, sumX2 float64
	var n int
	for _, name := range names {
		agg := totals[name]
		tr := TenantReport{Tenant: name, Service: agg.service, Demand: agg.demand,
			ServiceShare: ratio(agg.service, fleet.service), DemandShare: ratio(agg.demand, fleet.demand)}
		if agg.ttft.count() >= MinSamples && fleetP95 > 0 {
			tr.P95TTFT = agg.ttft.quantile(0.95)
			tr.Slowdown = tr.P95TTFT / fleetP95
			tr.HasSlowdown = true
		}
		rep.Tenants = append(rep.Tenants, tr)
		if agg.demand > 0 {
			x := agg.service / agg.demand // service per unit of demand; Jain is scale-free
			sumX += x
			sumX2 += x * x
			n++
		}
	}
	if n > 0 && sumX2 > 0 {
		rep.Jain = sumX * sumX / (float64(n) * sumX2)
		rep.HasJain = true
	}
	rep.Explains = t.noisyNeighbour(names, totals, &fleet)
	for _, e := range rep.Explains {
		if e.Score > rep.NoisyScore {
			rep.Noisy, rep.NoisyScore, rep.HasNoisy = e.Tenant, e.Score, true
		}
	}
	return rep
}

// noisyNeighbour names the tenant whose per-slot load correlates best with the other tenants'
// per-slot mean TTFT, weighted by its share of service (a tiny tenant that happens to correlate
// explains little). Needs at least 3 slots where both are defined; score in [0, 1].
func (t *Tracker) noisyNeighbour(names []string, totals map[string]*tenantSlot, fleet *tenantSlot) []TenantScore {
	if len(names) < 2 || fleet.ttftN == 0 || fleet.service == 0 {
		return nil
	}
	var scores []TenantScore
	baseline := fleet.ttftSum / fleet.ttftN
	order := t.ring.Order()
	xs := make([]float64, 0, len(order))
	ys := make([]float64, 0, len(order))
	for _, cand := range names {
		xs, ys = xs[:0], ys[:0]
		for _, i := range order {
			slot := t.slots[i]
			var sum, cnt float64
			for name, ts := range slot {
				if name != cand {
					sum += ts.ttftSum
					cnt += ts.ttftN
				}
			}
			if cnt == 0 {
				continue
			}
			load := 0.0
			if ts := slot[cand]; ts != nil {
				load = ts.service
			}
			xs = append(xs, load)
			ys = append(ys, sum/cnt/baseline)
		}
		if len(xs) < 3 {
			continue
		}
		c := pearson(xs, ys)
		scores = append(scores, TenantScore{Tenant: cand, Score: math.Max(0, c) * ratio(totals[cand].service, fleet.service)})
	}
	return scores
}

func pearson(xs, ys []float64) float64 {
	n := float64(len(xs))
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	mx /= n
	my /= n
	var sxy, sxx, syy float64
	for i := range xs {
		dx, dy := xs[i]-mx, ys[i]-my
		sxy += dx * dy
		sxx += dx * dx
		syy += dy * dy
	}
	if sxx == 0 || syy == 0 {
		return 0
	}
	return sxy / math.Sqrt(sxx*syy)
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
