// Package agentrun buffers the agent spans of a trace (invoke_agent, plan, execute_tool) until the
// run is complete, then scores plan adherence with the shared adherence package. The buffer is
// bounded in traces and bytes; traces pushed out before they complete are counted as evicted.
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

type agentSpan struct {
	spanID pcommon.SpanID
	name   string
}

type planSpan struct {
	parent   pcommon.SpanID
	revision int
	start    time.Time
	tools    []string
}

type toolSpan struct {
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
	bytes   int
}

// Run is one scored agent run.
type Run struct {
	Agent   string
	TraceID pcommon.TraceID
	SpanID  pcommon.SpanID
	Result  adherence.Result
}

// Buffer holds incomplete agent traces. Not safe for concurrent use.
type Buffer struct {
	lim     Limits
	traces  map[pcommon.TraceID]*trace
	queue   []*trace // arrival order; entries already removed from traces are skipped
	bytes   int
	evicted int64
}

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

const overhead = 96 // rough per-span bookkeeping bytes

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
	t.bytes += grow
	b.bytes += grow
	for b.lim.MaxBytes > 0 && b.bytes > b.lim.MaxBytes && len(b.traces) > 1 {
		if !b.evictOldestExcept(t) {
			break
		}
	}
	return t
}

// AddAgent records an invoke_agent span; the run is scored Wait after the last one arrives.
func (b *Buffer) AddAgent(traceID pcommon.TraceID, spanID pcommon.SpanID, name string, now time.Time) {
	t := b.traceFor(traceID, now, overhead+len(name))
	t.agents = append(t.agents, agentSpan{spanID: spanID, name: name})
	t.readyAt = now.Add(b.lim.Wait)
}

// AddPlan records a plan span (its tools, or its steps when no tools were given).
func (b *Buffer) AddPlan(traceID pcommon.TraceID, parent pcommon.SpanID, revision int, start time.Time, tools []string, now time.Time) {
	size := overhead
	for _, s := range tools {
		size += len(s) + 16
	}
	t := b.traceFor(traceID, now, size)
	t.plans = append(t.plans, planSpan{parent: parent, revision: revision, start: start, tools: tools})
}

// AddTool records an execute_tool span; revision is NoRevision when the span carried none.
func (b *Buffer) AddTool(traceID pcommon.TraceID, parent pcommon.SpanID, name string, revision int, start, now time.Time) {
	t := b.traceFor(traceID, now, overhead+len(name))
	t.tools = append(t.tools, toolSpan{parent: parent, name: name, revision: revision, start: start})
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
		case t.readyAt.IsZero() && b.lim.MaxAge > 0 && now.Sub(t.first) >= b.lim.MaxAge:
			b.remove(t)
			if len(t.plans) > 0 { // a plan without its run is lost data; tools outside any run are not
				b.evicted++
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
func score(t *trace) []Run {
	owner := func(parent pcommon.SpanID) int {
		for i, a := range t.agents {
			if a.spanID == parent {
				return i
			}
		}
		return 0 // a span deeper in the tree: the trace's first agent
	}
	plans := make([][]planSpan, len(t.agents))
	tools := make([][]toolSpan, len(t.agents))
	for _, p := range t.plans {
		i := owner(p.parent)
		plans[i] = append(plans[i], p)
	}
	for _, tl := range t.tools {
		i := owner(tl.parent)
		tools[i] = append(tools[i], tl)
	}
	runs := make([]Run, 0, len(t.agents))
	for i, a := range t.agents {
		if len(plans[i]) == 0 {
			continue // nothing was announced: no adherence to measure
		}
		unplanned, revisions := segment(plans[i], tools[i])
		runs = append(runs, Run{Agent: a.name, TraceID: t.id, SpanID: a.spanID, Result: adherence.Score(unplanned, revisions)})
	}
	return runs
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
