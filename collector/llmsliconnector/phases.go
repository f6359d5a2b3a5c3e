package llmsliconnector

import (
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	sc "github.com/llmotel/llmotel/collector/llmsliconnector/internal/semconv"
)

// phase is one parsed phase span.
type phase struct {
	traceID  pcommon.TraceID
	spanID   pcommon.SpanID
	name     string
	source   string
	duration float64
	stalls   int64
	tpot     float64 // decode phases: the SDK's time per output token, when it measured one
	hasTPOT  bool
	arrived  time.Time
}

var validPhase = map[string]bool{
	sc.AttrPhaseNameRetries: true, sc.AttrPhaseNameQueue: true, sc.AttrPhaseNamePrefill: true,
	sc.AttrPhaseNameFirstToken: true, sc.AttrPhaseNameDecode: true,
}

var validSource = map[string]bool{
	sc.AttrPhaseSourceServer: true, sc.AttrPhaseSourceClient: true, sc.AttrPhaseSourceEstimated: true,
}

// phaseJoin joins phase spans with their LLM call span, whichever arrives first: phases wait in
// pending (bounded, expiring after maxAge); calls are remembered in a bounded ring so that late phases
// still get their dimensions.
type phaseJoin struct {
	max     int
	maxAge  time.Duration
	pending map[pcommon.SpanID][]phase
	count   int
	order   []pcommon.SpanID // pending parents in arrival order
	recent  map[pcommon.SpanID]callDims
	ring    []pcommon.SpanID
	next    int
	dropped int
}

func newPhaseJoin(maxPending int, maxAge time.Duration) *phaseJoin {
	return &phaseJoin{
		max: maxPending, maxAge: maxAge,
		pending: map[pcommon.SpanID][]phase{},
		recent:  make(map[pcommon.SpanID]callDims, maxPending),
		ring:    make([]pcommon.SpanID, maxPending),
	}
}

// ingestPhase validates a phase span and records it now (its call is known) or parks it.
func (c *llmSLI) ingestPhase(span ptrace.Span, now time.Time) {
	r := reader{attrs: span.Attributes()}
	r.require(sc.AttrPhaseSource)
	p := phase{traceID: span.TraceID(), spanID: span.SpanID(), name: r.str(sc.AttrPhaseName), source: r.str(sc.AttrPhaseSource), arrived: now}
	p.stalls, _ = r.count(sc.AttrDecodeStallCount)
	p.tpot, p.hasTPOT = r.amount(sc.AttrDecodeTimePerOutputToken)
	_, dur, ok := spanTimes(span)
	switch {
	case r.bad != "":
	case !validPhase[p.name] || !validSource[p.source]:
		r.fail(reasonInvalidValue)
	case !ok:
		r.fail(reasonBadTimestamps)
	case span.ParentSpanID().IsEmpty():
		r.fail(reasonOrphanPhase)
	}
	if r.bad != "" {
		c.reject(r.bad, now, 1)
		return
	}
	p.duration = dur
	parent := span.ParentSpanID()
	if d, known := c.phases.recent[parent]; known {
		c.recordPhase(&d, p, now)
		if p.name == sc.AttrPhaseNameDecode && p.stalls > 0 {
			v := c.scratch[:3]
			v[0], v[1], v[2] = d.model, d.region, d.tenant
			c.st.stalls.Add(v, float64(p.stalls), now)
		}
		return
	}
	if dropped := c.phases.park(parent, p); dropped > 0 {
		c.reject(reasonOrphanPhase, now, float64(dropped))
	}
}

// recordPhase adds one phase to the phase histogram under its call's dimensions.
func (c *llmSLI) recordPhase(d *callDims, p phase, now time.Time) {
	v := c.scratch[:7]
	v[0], v[1], v[2], v[3], v[4], v[5], v[6] = d.model, d.revision, d.region, d.tenant, d.cacheState, p.source, p.name
	c.st.phase.Record(v, p.duration, now, p.traceID, p.spanID)
}

// park holds a phase until its call arrives; returns how many old phases it had to drop to stay bounded.
func (j *phaseJoin) park(parent pcommon.SpanID, p phase) int {
	dropped := 0
	for j.count >= j.max && len(j.order) > 0 {
		dropped += j.dropOldest()
	}
	if _, ok := j.pending[parent]; !ok {
		if len(j.order) >= 2*j.max+16 {
			j.compact() // entries of taken phases pile up between flushes
		}
		j.order = append(j.order, parent)
	}
	j.pending[parent] = append(j.pending[parent], p)
	j.count++
	return dropped
}

func (j *phaseJoin) dropOldest() int {
	oldest := j.order[0]
	j.order = j.order[1:]
	n := len(j.pending[oldest])
	delete(j.pending, oldest)
	j.count -= n
	return n
}

// compact drops order entries whose phases were taken by their call.
func (j *phaseJoin) compact() {
	kept := j.order[:0]
	for _, parent := range j.order {
		if _, ok := j.pending[parent]; ok {
			kept = append(kept, parent)
		}
	}
	clear(j.order[len(kept):])
	j.order = kept
}

// take removes and returns the phases waiting for call.
func (j *phaseJoin) take(call pcommon.SpanID) []phase {
	ps, ok := j.pending[call]
	if !ok {
		return nil
	}
	delete(j.pending, call)
	j.count -= len(ps)
	// j.order keeps a stale entry; expire and dropOldest skip it.
	return ps
}

// remember keeps a call's dimensions for phases that arrive after it (bounded ring).
func (j *phaseJoin) remember(call pcommon.SpanID, d callDims, _ time.Time) {
	if len(j.ring) == 0 {
		return
	}
	if old := j.ring[j.next]; !old.IsEmpty() {
		delete(j.recent, old)
	}
	j.ring[j.next] = call
	j.next = (j.next + 1) % len(j.ring)
	j.recent[call] = d
}

// expire drops phases older than maxAge (all of them when final) and returns how many.
func (j *phaseJoin) expire(now time.Time, final bool) int {
	dropped := 0
	kept := j.order[:0]
	for _, parent := range j.order {
		ps, ok := j.pending[parent]
		if !ok {
			continue // taken by its call
		}
		if final || now.Sub(ps[0].arrived) >= j.maxAge {
			dropped += len(ps)
			j.count -= len(ps)
			delete(j.pending, parent)
			continue
		}
		kept = append(kept, parent)
	}
	j.order = kept
	return dropped
}
