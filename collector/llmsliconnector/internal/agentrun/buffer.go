// Package agentrun buffers the agent spans of a trace (invoke_agent, plan, execute_tool) until the
// run is complete, then scores plan adherence with the shared adherence package. The buffer is
// bounded in traces and bytes; traces pushed out before they complete are counted as evicted.
//
// Split runs: behind a load-balancing tier a run's spans can reach two collectors (the ring changed while
// the run was in flight), and each sees part of it. Scoring a part would be silently wrong (adherence
// 1.00 from a run whose deviating tool went elsewhere, or a run without its plan passing as one that
// announced none), so a run found incomplete is reported as split instead of scored (Run.Split), and a
// part whose root never arrives is counted as a split fragment when it expires (TakeFragments).
package agentrun

import (
	"sort"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/llmotel/llmotel/collector/llmsliconnector/internal/adherence"
)

// Limits bounds the buffer and says how long to wait for late spans.
type Limits struct {
	MaxTraces int           // traces held at once
	MaxBytes  int           // estimated bytes held at once
	Wait      time.Duration // after an invoke_agent span arrives, wait this long for late children
	MaxAge    time.Duration // a trace whose agent span never arrives is evicted after this long
}

// NoRevision marks a tool that carried no llmotel.plan.revision.
const NoRevision = -1

// MaxRecordedNames is how many tool names the SDK records at most on a run's root span
// (llmotel.agent.executed_tools, MAX_RECORDED_NAMES in src/llmotel/agent/run.py).
const MaxRecordedNames = 256

// Recorded is what the SDK wrote on a run's root span about the whole run, so that the collector can
// tell a run it saw only part of. Known is false when the root carries none of it (another SDK, or a
// run that did not finish normally): then only the plan revisions can reveal a split.
type Recorded struct {
	Known    bool
	Executed int // tools the run executed (len of llmotel.agent.executed_tools, capped at MaxRecordedNames)
	Plans    int // plans it announced (llmotel.agent.replans + 1 when it planned, else 0)
}

type agentSpan struct {
	spanID pcommon.SpanID
	parent pcommon.SpanID
	name   string
	start  time.Time
	rec    Recorded
}

// link is one span's parent link, kept so that score can find a tool's nearest agent ancestor
// through spans that are neither agent, plan nor tool (the user's own spans, LLM calls).
type link struct {
	span, parent pcommon.SpanID
}

type planSpan struct {
	parent   pcommon.SpanID
	revision int
	start    time.Time
	tools    []string
}

type toolSpan struct {
	spanID   pcommon.SpanID // empty when the caller did not give it (no de-duplication)
	parent   pcommon.SpanID
	name     string
	revision int
	start    time.Time
}

type trace struct {
	id      pcommon.TraceID
	first   time.Time
	readyAt time.Time // zero until an invoke_agent span arrived
	agents  []agentSpan
	plans   []planSpan
	tools   []toolSpan
	links   []link
	bytes   int
}

// Run is one scored agent run, or one found split (Split: Result is unset and must not be recorded).
type Run struct {
	Agent   string
	TraceID pcommon.TraceID
	SpanID  pcommon.SpanID
	Result  adherence.Result
	Split   bool
}

// Buffer holds incomplete agent traces. Not safe for concurrent use.
type Buffer struct {
	lim       Limits
	traces    map[pcommon.TraceID]*trace
	queue     []*trace // arrival order; entries already removed from traces are skipped
	bytes     int
	evicted   int64
	fragments int64
	// Traces scored recently (a bounded ring): spans of theirs that arrive later are duplicates (an
	// at-least-once tier re-sent them) or too late; the run was judged from its root's record already,
	// so they are dropped instead of opening a fragment (or, for a re-sent root, a second run).
	scored     map[pcommon.TraceID]struct{}
	scoredRing []pcommon.TraceID
	scoredNext int
}

// recentScored bounds the set of recently scored traces (16 bytes and a map entry each).
const recentScored = 4096

// NewBuffer returns an empty buffer.
func NewBuffer(lim Limits) *Buffer {
	return &Buffer{lim: lim, traces: map[pcommon.TraceID]*trace{}}
}

// Len is the number of traces held; Bytes their estimated size.
func (b *Buffer) Len() int   { return len(b.traces) }
func (b *Buffer) Bytes() int { return b.bytes }

// TakeEvicted returns how many traces were evicted since the last call.
func (b *Buffer) TakeEvicted() int64 {
	n := b.evicted
	b.evicted = 0
	return n
}

// TakeFragments returns how many split fragments expired since the last call: traces that held a plan,
// or a tool inside a planned run (it names a plan revision), whose run's root never arrived here.
func (b *Buffer) TakeFragments() int64 {
	n := b.fragments
	b.fragments = 0
	return n
}

const overhead = 96 // rough per-span bookkeeping bytes

// linkBytes is what one parent link costs: the two IDs plus its share of the maps score builds.
const linkBytes = 48

// late reports whether the trace was scored recently here: its spans now are duplicates or too late.
func (b *Buffer) late(id pcommon.TraceID) bool {
	if _, held := b.traces[id]; held {
		return false
	}
	_, ok := b.scored[id]
	return ok
}

// markScored remembers a scored trace in the bounded ring.
func (b *Buffer) markScored(id pcommon.TraceID) {
	if b.scored == nil {
		b.scored = make(map[pcommon.TraceID]struct{}, recentScored)
		b.scoredRing = make([]pcommon.TraceID, 0, recentScored)
	}
	if len(b.scoredRing) < recentScored {
		b.scoredRing = append(b.scoredRing, id)
	} else {
		delete(b.scored, b.scoredRing[b.scoredNext])
		b.scoredRing[b.scoredNext] = id
		b.scoredNext = (b.scoredNext + 1) % recentScored
	}
	b.scored[id] = struct{}{}
}

func (b *Buffer) traceFor(id pcommon.TraceID, now time.Time, grow int) *trace {
	t, ok := b.traces[id]
	if !ok {
		for b.lim.MaxTraces > 0 && len(b.traces) >= b.lim.MaxTraces {
			b.evictOldest()
		}
		t = &trace{id: id, first: now}
		b.traces[id] = t
		b.queue = append(b.queue, t)
	}
	b.grow(t, grow)
	return t
}

// grow charges t with n bytes and evicts the oldest other traces while the buffer is over its bound.
func (b *Buffer) grow(t *trace, n int) {
	t.bytes += n
	b.bytes += n
	for b.lim.MaxBytes > 0 && b.bytes > b.lim.MaxBytes && len(b.traces) > 1 {
		if !b.evictOldestExcept(t) {
			break
		}
	}
}

// AddAgent records an invoke_agent span; the run is scored Wait after the last one arrives.
func (b *Buffer) AddAgent(traceID pcommon.TraceID, spanID, parent pcommon.SpanID, name string, start, now time.Time) {
	b.AddAgentRecorded(traceID, spanID, parent, name, start, now, Recorded{})
}

// AddAgentRecorded is AddAgent with what the SDK recorded on the root about the whole run.
func (b *Buffer) AddAgentRecorded(traceID pcommon.TraceID, spanID, parent pcommon.SpanID, name string, start, now time.Time, rec Recorded) {
	if b.late(traceID) {
		return
	}
	if t, ok := b.traces[traceID]; ok {
		for _, a := range t.agents {
			if a.spanID == spanID {
				return // the same root sent twice: one run
			}
		}
	}
	t := b.traceFor(traceID, now, overhead+len(name))
	t.agents = append(t.agents, agentSpan{spanID: spanID, parent: parent, name: name, start: start, rec: rec})
	t.readyAt = now.Add(b.lim.Wait)
}

// Holds reports whether the buffer holds spans of the trace (whether its links are worth keeping).
func (b *Buffer) Holds(traceID pcommon.TraceID) bool {
	_, ok := b.traces[traceID]
	return ok
}

// AddLink records a span's parent link in a trace the buffer already holds; it does nothing for
// other traces, for roots, and when the trace alone would exceed MaxBytes (a missing link only
// makes score fall back to the outermost agent). O(1) amortized.
func (b *Buffer) AddLink(traceID pcommon.TraceID, spanID, parent pcommon.SpanID) {
	if parent.IsEmpty() {
		return
	}
	t, ok := b.traces[traceID]
	if !ok || (b.lim.MaxBytes > 0 && t.bytes+linkBytes > b.lim.MaxBytes) {
		return
	}
	t.links = append(t.links, link{span: spanID, parent: parent})
	b.grow(t, linkBytes)
}

// AddPlan records a plan span (its tools, or its steps when no tools were given).
func (b *Buffer) AddPlan(traceID pcommon.TraceID, parent pcommon.SpanID, revision int, start time.Time, tools []string, now time.Time) {
	if b.late(traceID) {
		return
	}
	if t, ok := b.traces[traceID]; ok {
		for _, p := range t.plans {
			if p.parent == parent && p.revision == revision && p.start.Equal(start) {
				return // the same plan span sent twice (same run, revision and start)
			}
		}
	}
	size := overhead
	for _, s := range tools {
		size += len(s) + 16
	}
	t := b.traceFor(traceID, now, size)
	t.plans = append(t.plans, planSpan{parent: parent, revision: revision, start: start, tools: tools})
}

// AddTool records an execute_tool span; revision is NoRevision when the span carried none.
func (b *Buffer) AddTool(traceID pcommon.TraceID, parent pcommon.SpanID, name string, revision int, start, now time.Time) {
	b.AddToolSpan(traceID, pcommon.SpanID{}, parent, name, revision, start, now)
}

// AddToolSpan is AddTool with the tool span's own id: a span sent twice (an at-least-once tier's retry)
// counts once, instead of as a repeated, extra step that would lower the run's adherence.
func (b *Buffer) AddToolSpan(traceID pcommon.TraceID, spanID, parent pcommon.SpanID, name string, revision int, start, now time.Time) {
	if b.late(traceID) {
		return
	}
	if t, ok := b.traces[traceID]; ok && !spanID.IsEmpty() {
		for _, tl := range t.tools {
			if tl.spanID == spanID {
				return
			}
		}
	}
	t := b.traceFor(traceID, now, overhead+len(name))
	t.tools = append(t.tools, toolSpan{spanID: spanID, parent: parent, name: name, revision: revision, start: start})
}

// Expire scores the runs whose wait is over and evicts traces older than MaxAge that never completed.
func (b *Buffer) Expire(now time.Time) []Run {
	var runs []Run
	kept := b.queue[:0]
	for _, t := range b.queue {
		if b.traces[t.id] != t {
			continue // already removed
		}
		switch {
		case !t.readyAt.IsZero() && !now.Before(t.readyAt):
			runs = append(runs, score(t)...)
			b.remove(t)
			b.markScored(t.id)
		case t.readyAt.IsZero() && b.lim.MaxAge > 0 && now.Sub(t.first) >= b.lim.MaxAge:
			b.remove(t)
			if len(t.plans) > 0 { // a plan without its run is lost data; tools outside any run are not
				b.evicted++
			}
			if t.inPlannedRun() {
				b.fragments++
			}
		default:
			kept = append(kept, t)
		}
	}
	clear(b.queue[len(kept):])
	b.queue = kept
	return runs
}

// Flush scores every run that has its agent span, ignoring the wait (used at shutdown), and
// counts the rest as evicted.
func (b *Buffer) Flush() []Run {
	var runs []Run
	for _, t := range b.queue {
		if b.traces[t.id] != t {
			continue
		}
		if !t.readyAt.IsZero() {
			runs = append(runs, score(t)...)
		} else {
			b.evicted++
		}
		b.remove(t)
	}
	b.queue = nil
	return runs
}

// inPlannedRun: the trace holds a plan, or a tool that names a plan revision (it ran inside a run
// that announced a plan): part of an agent run, not a tool used outside any run.
func (t *trace) inPlannedRun() bool {
	if len(t.plans) > 0 {
		return true
	}
	for _, tl := range t.tools {
		if tl.revision != NoRevision {
			return true
		}
	}
	return false
}

func (b *Buffer) remove(t *trace) {
	delete(b.traces, t.id)
	b.bytes -= t.bytes
}

func (b *Buffer) evictOldest() { b.evictOldestExcept(nil) }

func (b *Buffer) evictOldestExcept(keep *trace) bool {
	for i, t := range b.queue {
		if b.traces[t.id] != t || t == keep {
			continue
		}
		b.remove(t)
		b.evicted++
		b.queue = append(b.queue[:i:i], b.queue[i+1:]...)
		return true
	}
	return false
}

// score splits the trace into runs (one per invoke_agent span) and scores each that announced a plan.
// A plan or tool belongs to its nearest invoke_agent ancestor; when no ancestor is known to be an
// agent (links evicted or never sent), to the outermost agent.
func score(t *trace) []Run {
	o := newOwners(t)
	plans := make([][]planSpan, len(t.agents))
	tools := make([][]toolSpan, len(t.agents))
	for _, p := range t.plans {
		i := o.owner(p.parent)
		plans[i] = append(plans[i], p)
	}
	for _, tl := range t.tools {
		i := o.owner(tl.parent)
		tools[i] = append(tools[i], tl)
	}
	runs := make([]Run, 0, len(t.agents))
	for i, a := range t.agents {
		if split(a.rec, plans[i], tools[i]) {
			runs = append(runs, Run{Agent: a.name, TraceID: t.id, SpanID: a.spanID, Split: true})
			continue
		}
		if len(plans[i]) == 0 {
			continue // nothing was announced: no adherence to measure
		}
		unplanned, revisions := segment(plans[i], tools[i])
		runs = append(runs, Run{Agent: a.name, TraceID: t.id, SpanID: a.spanID, Result: adherence.Score(unplanned, revisions)})
	}
	return runs
}

// split reports whether a run's spans are missing here: a tool names a plan revision that did not
// arrive, or the root's record says the run executed more tools or announced more plans than arrived.
// More tools than recorded is not a split (a span sent twice); a cap-sized record only bounds below.
func split(rec Recorded, plans []planSpan, tools []toolSpan) bool {
	seen := make(map[int]bool, len(plans))
	for _, p := range plans {
		seen[p.revision] = true
	}
	for _, tl := range tools {
		if tl.revision != NoRevision && !seen[tl.revision] {
			return true
		}
	}
	if !rec.Known {
		return false
	}
	return len(tools) < min(rec.Executed, MaxRecordedNames) || len(seen) < rec.Plans
}

// Results of a walk up the parent links that found no agent.
const (
	reachedRoot    = -1 // the chain ended at a span without parent
	reachedUnknown = -2 // the chain left the buffered links (or looped)
)

// owners resolves spans to the index of their nearest agent ancestor. Every span on a walked
// chain is memoized, so resolving all of a trace's spans is linear in its links.
type owners struct {
	agents    map[pcommon.SpanID]int
	parents   map[pcommon.SpanID]pcommon.SpanID // built by the first walk that needs it
	memo      map[pcommon.SpanID]int
	links     []link
	path      []pcommon.SpanID
	outermost int
}

func newOwners(t *trace) *owners {
	o := &owners{agents: make(map[pcommon.SpanID]int, len(t.agents)), links: t.links}
	for i, a := range t.agents {
		if _, dup := o.agents[a.spanID]; !dup {
			o.agents[a.spanID] = i
		}
	}
	o.outermost = o.findOutermost(t.agents)
	return o
}

// owner is the agent a plan or tool with this parent belongs to. t must have an agent.
func (o *owners) owner(parent pcommon.SpanID) int {
	if i := o.ancestor(parent); i >= 0 {
		return i
	}
	return o.outermost
}

// ancestor walks up from id (inclusive) to the first agent span and returns its index, or
// reachedRoot / reachedUnknown.
func (o *owners) ancestor(id pcommon.SpanID) int {
	if i, ok := o.agents[id]; ok {
		return i // the common case, a direct child of its agent: no map of links needed
	}
	if id.IsEmpty() {
		return reachedRoot
	}
	if o.parents == nil {
		o.parents = make(map[pcommon.SpanID]pcommon.SpanID, len(o.links))
		for _, l := range o.links {
			o.parents[l.span] = l.parent
		}
		o.memo = make(map[pcommon.SpanID]int)
	}
	path := o.path[:0]
	res := reachedUnknown
	for cur := id; ; {
		if i, ok := o.agents[cur]; ok {
			res = i
			break
		}
		if m, ok := o.memo[cur]; ok {
			res = m
			break
		}
		if cur.IsEmpty() {
			res = reachedRoot
			break
		}
		p, ok := o.parents[cur]
		if !ok || len(path) > len(o.parents) { // parent unknown, or a cycle in malformed input
			break
		}
		path = append(path, cur)
		cur = p
	}
	for _, s := range path {
		o.memo[s] = res
	}
	o.path = path
	return res
}

// findOutermost picks the agent whose own parent chain holds no other agent: preferably one whose
// chain is known to reach the root, else one whose chain is not known to reach an agent; the
// earliest started among those (ties: the first to arrive).
func (o *owners) findOutermost(agents []agentSpan) int {
	best, bestRank := 0, 3
	for i, a := range agents {
		rank := 2 // nested in another agent (or in itself: malformed)
		switch o.ancestor(a.parent) {
		case reachedRoot:
			rank = 0
		case reachedUnknown:
			rank = 1
		}
		if rank < bestRank || (rank == bestRank && a.start.Before(agents[best].start)) {
			best, bestRank = i, rank
		}
	}
	return best
}

// segment assigns each executed tool to the plan revision in force when it started: the revision
// the tool span names, or else the latest plan that started before it.
func segment(plans []planSpan, tools []toolSpan) ([]string, []adherence.Revision) {
	sort.SliceStable(plans, func(i, j int) bool { return plans[i].revision < plans[j].revision })
	sort.SliceStable(tools, func(i, j int) bool { return tools[i].start.Before(tools[j].start) })
	revisions := make([]adherence.Revision, len(plans))
	byRevision := make(map[int]int, len(plans))
	for i, p := range plans {
		revisions[i].Planned = p.tools
		byRevision[p.revision] = i
	}
	var unplanned []string
	for _, tl := range tools {
		idx := -1
		if tl.revision != NoRevision {
			if i, ok := byRevision[tl.revision]; ok {
				idx = i
			}
		} else {
			for i, p := range plans {
				if !p.start.After(tl.start) {
					idx = i
				}
			}
		}
		if idx < 0 {
			unplanned = append(unplanned, tl.name)
			continue
		}
		revisions[idx].Executed = append(revisions[idx].Executed, tl.name)
	}
	return unplanned, revisions
}
