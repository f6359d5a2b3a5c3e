package fairness

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The arithmetic of every expected value below is in collector/llmsliconnector/testdata/fairness.md.

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func sec(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

var poolP = Pool{Server: "vllm-a:8000", Model: "llama", Region: "eu"}

// call is a call starting at start that waits wait seconds, is served until end, with TTFT ttft.
func mk(tenant string, pool Pool, start, wait, end, in, out, ttft float64, measured bool) Call {
	return Call{Tenant: tenant, Pool: pool, Start: sec(start), End: sec(end), UncachedInput: in, Output: out,
		Wait: wait, HasWait: true, WaitMeasured: measured, TTFT: ttft, HasTTFT: true}
}

func tenant(t *testing.T, pr PoolReport, name string) TenantReport {
	for _, tr := range pr.Tenants {
		if tr.Tenant == name {
			return tr
		}
	}
	t.Fatalf("no tenant %q", name)
	return TenantReport{}
}

func TestWaterfill(t *testing.T) {
	// Example 1 of fairness.md: capacity 660, demands 900 and 120 -> 540 and 120.
	assert.InDeltaSlice(t, []float64{540, 120}, waterfill(660, []float64{900, 120}), 1e-9)
	// Three tenants, capacity 90, demands 10, 50, 60: level 30 -> 10; then 80/2 = 40 each.
	assert.InDeltaSlice(t, []float64{10, 40, 40}, waterfill(90, []float64{10, 50, 60}), 1e-9)
	// Demand below capacity: everyone gets its demand.
	assert.InDeltaSlice(t, []float64{1, 2}, waterfill(10, []float64{1, 2}), 1e-9)
	assert.InDelta(t, 1.0, jain(nil), 0, "nobody to be unfair to")
	assert.InDelta(t, 0.5, jain([]float64{1, 0}), 1e-12)
}

// Example 1: one 10 s slot, tenants A (two calls, one waits 5 s) and B (one call, waits 8 s).
func TestExample1ServiceFairShareJainSlowdownBlame(t *testing.T) {
	tr := NewTracker(Options{Window: 10 * time.Second, Slots: 1})
	now := sec(9)
	tr.Observe(now, mk("A", poolP, 0, 0, 5, 100, 100, 0.5, true))
	tr.Observe(now, mk("A", poolP, 0, 5, 10, 100, 100, 6, false))
	tr.Observe(now, mk("B", poolP, 0, 8, 10, 60, 0, 10, true))
	rep := tr.Snapshot(now)
	require.Len(t, rep.Pools, 1)
	pr := rep.Pools[0]
	a, b := tenant(t, pr, "A"), tenant(t, pr, "B")
	assert.InDelta(t, 600, a.Service, 1e-9)
	assert.InDelta(t, 60, b.Service, 1e-9)
	assert.InDelta(t, 540, a.FairShare, 1e-9)
	assert.InDelta(t, 120, b.FairShare, 1e-9)
	assert.InDelta(t, 600.0/540, a.Ratio, 1e-9)
	assert.InDelta(t, 0.5, b.Ratio, 1e-9)
	assert.InDelta(t, 0.8742203742203742, pr.Jain, 1e-9)
	assert.InDelta(t, 0.8742203742203742, rep.FleetJain, 1e-9, "one pool: the fleet is the pool")
	assert.Equal(t, []Slowdown{{Measured: true, P50: 1, P95: 1, Calls: 1}, {Measured: false, P50: 6, P95: 6, Calls: 1}}, a.Slowdowns)
	assert.Equal(t, []Slowdown{{Measured: true, P50: 5, P95: 5, Calls: 1}}, b.Slowdowns)
	assert.InDelta(t, 1.0, a.BlameShare, 1e-9, "all of B's 8 s is A's excess")
	assert.InDelta(t, 0.0, b.BlameShare, 1e-9, "A's wait overlapped only A's own call")
	assert.False(t, a.Named, "one slot: the permutation test has nothing to permute")
	assert.InDelta(t, 1.0, a.PValue, 0)
}

func TestNobodyWaitsIsFair(t *testing.T) {
	tr := NewTracker(Options{Window: 10 * time.Second, Slots: 1})
	now := sec(9)
	tr.Observe(now, mk("small", poolP, 0, 0, 1, 10, 1, 0.1, true))
	tr.Observe(now, mk("huge", poolP, 0, 0, 9, 50000, 4000, 2, true))
	rep := tr.Snapshot(now)
	assert.InDelta(t, 1.0, rep.Pools[0].Jain, 0)
	assert.InDelta(t, 1.0, rep.FleetJain, 0)
	for _, tr := range rep.Pools[0].Tenants {
		assert.False(t, tr.Backlogged)
		assert.False(t, tr.Named)
		assert.Equal(t, 1.0, tr.Slowdowns[0].P95, "no wait: slowdown 1")
	}
}

// burstScenario is Example 2: 10 slots of 10 s; N fills slots 2, 5 and 8 with one 10 000-unit call each;
// V sends one call per slot that waits 8 s in a burst slot and not at all otherwise. Z is alone in pool Q.
func burstScenario(tr *Tracker, now time.Time) { burstSlots(tr, now, 10) }

// burstSlots is Example 2 over its first n slots only.
func burstSlots(tr *Tracker, now time.Time, n int) {
	poolQ := Pool{Server: "other:8000", Model: "llama", Region: "eu"}
	for s := 0; s < n; s++ {
		at := float64(s * 10)
		if s == 2 || s == 5 || s == 8 {
			tr.Observe(now, mk("N", poolP, at, 0, at+10, 10000, 0, 0.2, true))
			tr.Observe(now, mk("V", poolP, at, 8, at+10, 100, 0, 9, true))
		} else {
			tr.Observe(now, mk("V", poolP, at, 0, at+2, 100, 0, 1, true))
		}
		tr.Observe(now, mk("Z", poolQ, at, 0, at+10, 50000, 0, 0.2, true))
	}
}

func TestBurstyTenantNamedAfterPersisting(t *testing.T) {
	// Two evaluations, as testdata/fairness.md's Example 2 is written (the default, 3, needs one more busy slot).
	tr := NewTracker(Options{Window: 100 * time.Second, Slots: 10, Persist: 2})
	now := sec(99)
	burstScenario(tr, now)
	rep := tr.Snapshot(now)
	pr := rep.Pools[1] // sorted by server: "other" < "vllm-a"
	require.Equal(t, poolP, pr.Pool)
	n, v := tenant(t, pr, "N"), tenant(t, pr, "V")
	assert.InDelta(t, 1.0, n.BlameShare, 1e-9)
	assert.True(t, n.Excess)
	assert.Less(t, n.PValue, 0.05/2, "about 1/84 < alpha / 2 tenants")
	assert.False(t, n.Named, "first evaluation: not yet persistent")
	assert.Equal(t, 9.0, v.Slowdowns[0].P95)
	assert.Equal(t, 1.0, n.Slowdowns[0].P95, "the victim's slowdown exceeds the culprit's")

	rep = tr.Snapshot(sec(109)) // one slot later, the bursts are still in the window
	n = tenant(t, rep.Pools[1], "N")
	assert.True(t, n.Named)
	assert.False(t, tenant(t, rep.Pools[1], "V").Named)
	assert.False(t, tenant(t, rep.Pools[0], "Z").Named, "Z shares no pool with the victims")
	assert.False(t, tenant(t, rep.Pools[0], "Z").HasBlame)
}

// "Bounded slowdown" of fairness.md: one tenant, estimated queues, tau = 50 ms (the default), then tau = 1 ms.
func TestBoundedSlowdown(t *testing.T) {
	calls := []Call{
		mk("E", poolP, 0, 3.151, 5, 10, 5, 3.152, false), // e1: run 1 ms -> 3.152 / 0.05 = 63.04 (plain: 3152)
		mk("E", poolP, 0, 0.6, 5, 10, 5, 0.8, false),     // e2: run 0.2 s >= tau -> 0.8 / 0.2 = 4 (as plain)
		mk("E", poolP, 0, 0.02, 5, 10, 5, 0.04, false),   // e3: 0.04 / 0.05 = 0.8 -> 1 (plain: 2)
		mk("E", poolP, 0, 0.5, 5, 10, 5, 0.5, false),     // e4: run 0 -> 0.5 / 0.05 = 10 (plain: undefined)
		mk("E", poolP, 0, 0.7, 5, 10, 5, 0.6, false),     // e5: queue > TTFT, inconsistent: no slowdown
	}
	slowdowns := func(floor time.Duration) []Slowdown {
		tr := NewTracker(Options{Window: 10 * time.Second, Slots: 1, SlowdownFloor: floor})
		for _, c := range calls {
			tr.Observe(sec(9), c)
		}
		return tenant(t, tr.Snapshot(sec(9)).Pools[0], "E").Slowdowns
	}
	// tau 50 ms: sorted (1, 4, 10, 63.04); p50 at rank ceil(0.5 x 4) = 2, p95 at rank ceil(0.95 x 4) = 4.
	got := slowdowns(0) // 0 takes the default, 50 ms
	require.Len(t, got, 1)
	assert.False(t, got[0].Measured)
	assert.Equal(t, 4, got[0].Calls)
	assert.InDelta(t, 4, got[0].P50, 1e-4)
	assert.InDelta(t, 63.04, got[0].P95, 1e-9)
	// tau 1 ms: sorted (2, 4, 500, 3152); the tiny denominators come back.
	got = slowdowns(time.Millisecond)
	require.Len(t, got, 1)
	assert.InDelta(t, 4, got[0].P50, 1e-4)
	assert.InDelta(t, 3152, got[0].P95, 1, "run = 1 ms up to the ~0.24 µs of float wall-clock seconds")
	// The function itself: no wait is 1 whatever the TTFT; at or above tau it is the plain ratio.
	assert.Equal(t, 1.0, boundedSlowdown(0.02, 0, 0.05))
	assert.Equal(t, 1.0, boundedSlowdown(9, 0, 0.05))
	assert.InDelta(t, 9.0, boundedSlowdown(9, 8, 0.05), 1e-12)
	assert.InDelta(t, 63.04, boundedSlowdown(3.152, 3.151, 0.05), 1e-12)
}

func TestBoundsAndLate(t *testing.T) {
	tr := NewTracker(Options{Window: 10 * time.Second, Slots: 1, MaxCalls: 2, MaxTenants: 1})
	now := sec(9)
	tr.Observe(now, mk("A", poolP, 0, 0, 1, 1, 1, 0.1, true))
	tr.Observe(now, mk("B", poolP, 0, 0, 1, 1, 1, 0.1, true)) // second tenant past MaxTenants
	tr.Observe(now, mk("A", poolP, 0, 0, 1, 1, 1, 0.1, true))
	tr.Observe(now, mk("A", poolP, 0, 0, 1, 1, 1, 0.1, true)) // third call past MaxCalls
	tr.Observe(sec(39), mk("A", poolP, 0, 0, 1, 1, 1, 0.1, true))
	assert.Equal(t, int64(2), tr.Dropped)
	assert.Equal(t, int64(1), tr.Late)
	assert.Empty(t, tr.Snapshot(sec(39)).Pools, "the window moved past every call")
}

// A heavy tenant within its fair share is not named: Example 2, but during each of V's waits V's own second
// call is served 20 000 units while N gets 8 000. Water-filling 28 000 between N (demand 8 000) and the waiting
// V (unbounded): level 14 000 > 8 000, so N's share is its whole 8 000, its excess 0, its blame 0 - although
// N's load correlates perfectly with V's waits and N's service (30 000) dwarfs V's.
func TestHeavyTenantWithinFairShareNotNamed(t *testing.T) {
	tr := NewTracker(Options{Window: 100 * time.Second, Slots: 10})
	for s := 0; s < 10; s++ {
		at := float64(s * 10)
		if s == 2 || s == 5 || s == 8 {
			tr.Observe(sec(99), mk("N", poolP, at, 0, at+10, 10000, 0, 0.2, true))
			tr.Observe(sec(99), mk("V", poolP, at, 8, at+10, 100, 0, 9, true))
			tr.Observe(sec(99), mk("V", poolP, at, 0, at+8, 20000, 0, 0.2, true))
		} else {
			tr.Observe(sec(99), mk("V", poolP, at, 0, at+2, 100, 0, 1, true))
		}
	}
	for _, now := range []float64{99, 109, 119} {
		n := tenant(t, tr.Snapshot(sec(now)).Pools[0], "N")
		assert.False(t, n.Excess)
		assert.InDelta(t, 0.0, n.BlameShare, 1e-12)
		assert.False(t, n.Named)
	}
}

// Example 3 of fairness.md: the pool is busy only in slots 7-9 of the window, where A serves steadily and B waits.
// Over all ten slots A's service and B's waiting are both zero in the idle slots, which alone gave p = 1/120; over
// the complete busy slots A's service is constant and the test has nothing to go on (p = 1): nobody is named.
func TestSteadyTenantOverIdleSlotsNotSignificant(t *testing.T) {
	tr := NewTracker(Options{Window: 100 * time.Second, Slots: 10})
	for _, at := range []float64{99, 109} {
		now := sec(at)
		if at == 99 {
			for s := 7; s <= 9; s++ {
				b := float64(s) * 10
				tr.Observe(now, mk("A", poolP, b, 0, b+8, 10000, 0, 0.5, true))
				tr.Observe(now, mk("B", poolP, b, 6, b+8, 100, 0, 7, true))
			}
		}
		pr := tr.Snapshot(now).Pools[0]
		a := tenant(t, pr, "A")
		assert.InDelta(t, 1.0, a.BlameShare, 1e-9)
		assert.True(t, a.Excess, "22 500 occupied against a fair 11 250")
		assert.InDelta(t, 1.0, a.PValue, 0)
		assert.False(t, a.Named)
	}
}

// "Short waits" of fairness.md: a 5 ms queue is scheduling latency, not backlog.
func TestWaitBelowMinWaitIsNoWait(t *testing.T) {
	tr := NewTracker(Options{Window: 10 * time.Second, Slots: 1})
	now := sec(9)
	tr.Observe(now, mk("A", poolP, 0, 0.005, 1, 100, 10, 0.02, true))
	tr.Observe(now, mk("B", poolP, 0, 0, 2, 20000, 100, 0.5, true))
	pr := tr.Snapshot(now).Pools[0]
	assert.InDelta(t, 1.0, pr.Jain, 0)
	a := tenant(t, pr, "A")
	assert.False(t, a.Backlogged)
	require.Len(t, a.Slowdowns, 1)
	assert.InDelta(t, 1.0, a.Slowdowns[0].P95, 0)
	assert.False(t, tenant(t, pr, "B").HasBlame)
}

// "Prefill placement" of fairness.md: 20 000 input tokens over the 0.1 s prefill, 2 x 20 output over the 0.1 s after.
func TestInputServiceIsPlacedOverThePrefill(t *testing.T) {
	c := call{we: 0, pe: 0.1, end: 0.2, work: 20040, inWork: 20000}
	assert.InDelta(t, 20000, c.served(0, 0.1), 1e-9)
	assert.InDelta(t, 40, c.served(0.1, 0.2), 1e-9)
	even := call{we: 0, pe: 0, end: 0.2, work: 20040, inWork: 20000}
	assert.InDelta(t, 10020, even.served(0, 0.1), 1e-9)
}

// A verdict persists when the next evaluation comes exactly one slot later, whatever the date: as float Unix seconds
// the two moments can differ by a fraction of a microsecond less than the slot (tests/fairness random windows: the
// offline check there evaluated a slot later and lost most of the binary's verdicts to it).
func TestVerdictPersistsOverExactlyOneSlot(t *testing.T) {
	slot := 10*time.Second + time.Nanosecond // not a multiple of the float seconds' resolution (as 10 s would be)
	var d time.Duration                      // a moment within slot 9 whose distance to a slot later reads short
	for ; d < time.Second; d += time.Millisecond {
		if a := sec(90).Add(d); secs(a.Add(slot))-secs(a) < slot.Seconds() {
			break
		}
	}
	require.Less(t, d, time.Second, "no such moment: the test would prove nothing")
	tr := NewTracker(Options{Window: 10 * slot, Slots: 10, Persist: 2})
	now := sec(90).Add(d)
	burstScenario(tr, now)
	assert.False(t, tenant(t, tr.Snapshot(now).Pools[1], "N").Named)
	assert.True(t, tenant(t, tr.Snapshot(now.Add(slot)).Pools[1], "N").Named)
}

// The per-slot series lie on the ring's slots (multiples of the slot length since the Unix epoch) for any slot
// length: a 7 s slot does not divide the 62,135,596,800 s from the zero time to the epoch, where time.Truncate
// would have laid them 3 s off and dropped the service at the start of the oldest slot.
func TestSnapshotSlotsAreTheRings(t *testing.T) {
	tr := NewTracker(Options{Window: 70 * time.Second, Slots: 10})
	r := time.Unix(1796564206/7*7, 0) // a slot boundary of the ring
	now := r.Add(5 * time.Second)
	tr.Observe(now, Call{Tenant: "A", Pool: poolP, Start: r.Add(-63 * time.Second), End: r.Add(-61 * time.Second),
		UncachedInput: 100, Output: 10})
	rep := tr.Snapshot(now)
	require.Len(t, rep.Pools, 1)
	assert.InDelta(t, 120.0, tenant(t, rep.Pools[0], "A").Service, 1e-9, "in the oldest slot: all of its service")
}

// A verdict persists only over new evidence: Example 2's pool falls quiet after slot 8, so the evaluations a slot
// and two slots later re-test the same busy slots and N stays unnamed (with slot 9 busy it is named at 109, as in
// TestBurstyTenantNamedAfterPersisting: both persist over 2 evaluations, as Example 2 is written).
func TestVerdictNeedsNewEvidenceToPersist(t *testing.T) {
	tr := NewTracker(Options{Window: 100 * time.Second, Slots: 10, Persist: 2})
	now := sec(99)
	burstSlots(tr, now, 9)
	n := tenant(t, tr.Snapshot(now).Pools[1], "N")
	require.Less(t, n.PValue, 0.05/2)
	assert.False(t, n.Named)
	for _, at := range []float64{109, 119} {
		n = tenant(t, tr.Snapshot(sec(at)).Pools[1], "N")
		assert.False(t, n.Named, "no busy slot since the first verdict, at %v", at)
	}
}

func TestANameLapsesOnlyAfterTheRuleFailsAsLongAsItTookToEarn(t *testing.T) {
	// Example 2 with persist_evaluations = 2; then V's calls go on, one a slot (new evidence every 10 s), and from
	// slot 11 each waits 8 s with nobody else served: N's bursts no longer explain the waiting (from 129 the two left
	// in the window sit on two of the three waiting slots of nine: p = C(3,2) / C(9,2) = 1/12 > 0.025).
	tr := NewTracker(Options{Window: 100 * time.Second, Slots: 10, Persist: 2})
	burstScenario(tr, sec(99))
	assert.False(t, tenant(t, tr.Snapshot(sec(99)).Pools[1], "N").Named)
	assert.True(t, tenant(t, tr.Snapshot(sec(109)).Pools[1], "N").Named)
	v := func(s int, wait float64) {
		at := float64(s * 10)
		tr.Observe(sec(at+2+wait), mk("V", poolP, at, wait, at+2+wait, 100, 0, 1+wait, true))
	}
	v(10, 0)
	n := tenant(t, tr.Snapshot(sec(119)).Pools[1], "N")
	assert.True(t, n.Named)
	assert.Less(t, n.PValue, 0.05/2, "three bursts on the three waiting slots of nine: 1/84")
	v(11, 8)
	n = tenant(t, tr.Snapshot(sec(129)).Pools[1], "N")
	require.Greater(t, n.PValue, 0.05/2)
	assert.True(t, n.Named, "one failed evaluation: still named")
	n = tenant(t, tr.Snapshot(sec(134)).Pools[1], "N")
	assert.True(t, n.Named, "half a slot later, no new evidence: still named")
	v(12, 8)
	n = tenant(t, tr.Snapshot(sec(139)).Pools[1], "N")
	require.Greater(t, n.PValue, 0.05/2)
	assert.False(t, n.Named, "the second failed evaluation over new evidence: the name lapses")
	v(13, 8)
	assert.False(t, tenant(t, tr.Snapshot(sec(149)).Pools[1], "N").Named, "and it is earned anew, not restored")
}
