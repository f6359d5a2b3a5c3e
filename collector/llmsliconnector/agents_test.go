package llmsliconnector

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"

	sc "github.com/llmotel/llmotel/collector/llmsliconnector/internal/semconv"
)

// agentTrace builds one trace span by span, in the order the spans are appended (= arrival order).
type agentTrace struct {
	spans ptrace.SpanSlice
	trace pcommon.TraceID
	next  byte
	at    time.Time
}

func newAgentTrace(td ptrace.Traces) *agentTrace {
	return &agentTrace{
		spans: td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans(),
		trace: pcommon.TraceID{0xa9, 1},
		at:    fixtureEpoch,
	}
}

// id reserves a span ID, so that a parent can be named before its span is appended.
func (a *agentTrace) id() pcommon.SpanID {
	a.next++
	return pcommon.SpanID{0xa9, a.next}
}

// span appends a span with the given ID and parent; op is gen_ai.operation.name ("" for a user's span).
func (a *agentTrace) span(id, parent pcommon.SpanID, op string) ptrace.Span {
	s := a.spans.AppendEmpty()
	s.SetTraceID(a.trace)
	s.SetSpanID(id)
	s.SetParentSpanID(parent)
	s.SetKind(ptrace.SpanKindInternal)
	s.SetStartTimestamp(pcommon.NewTimestampFromTime(a.at))
	a.at = a.at.Add(10 * time.Millisecond)
	s.SetEndTimestamp(pcommon.NewTimestampFromTime(a.at))
	if op != "" {
		s.Attributes().PutStr(sc.AttrGenAIOperationName, op)
	}
	return s
}

func (a *agentTrace) agent(id, parent pcommon.SpanID, name string, start time.Time) {
	s := a.span(id, parent, opInvokeAgent)
	s.Attributes().PutStr(sc.AttrGenAIAgentName, name)
	s.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
}

func (a *agentTrace) plan(parent pcommon.SpanID, tools ...string) {
	s := a.span(a.id(), parent, opPlan)
	s.Attributes().PutInt(sc.AttrPlanRevision, 0)
	sl := s.Attributes().PutEmptySlice(sc.AttrPlanTools)
	for _, tool := range tools {
		sl.AppendEmpty().SetStr(tool)
	}
}

func (a *agentTrace) tool(id, parent pcommon.SpanID, name string) {
	a.span(id, parent, opExecuteTool).Attributes().PutStr(sc.AttrGenAIToolName, name)
}

// runScores returns agent name -> (sum, count) of one adherence histogram.
func runScores(t *testing.T, md pmetric.Metrics, metric string) map[string][2]float64 {
	t.Helper()
	m, ok := metricByName(md, metric)
	require.True(t, ok, metric)
	out := map[string][2]float64{}
	dps := m.Histogram().DataPoints()
	for i := 0; i < dps.Len(); i++ {
		dp := dps.At(i)
		name, _ := dp.Attributes().Get(sc.AttrGenAIAgentName)
		out[name.Str()] = [2]float64{dp.Sum(), float64(dp.Count())}
	}
	return out
}

func rejectedBy(md pmetric.Metrics, reason string) int64 {
	m, ok := metricByName(md, sc.MetricSLISpansRejected)
	if !ok {
		return 0
	}
	var n int64
	dps := m.Sum().DataPoints()
	for i := 0; i < dps.Len(); i++ {
		if v, _ := dps.At(i).Attributes().Get(sc.AttrSLIReason); v.Str() == reason {
			n += dps.At(i).IntValue()
		}
	}
	return n
}

// A run.planning() block whose planner call failed leaves a plan span that announced nothing: not
// bad input. A plan with steps but no revision still is.
func TestPlanSpanThatAnnouncedNothingIsIgnored(t *testing.T) {
	h := newHarness(t, testConfig())
	td := ptrace.NewTraces()
	a := newAgentTrace(td)
	root, failed := a.id(), a.id()
	a.plan(root, "search")
	a.span(failed, root, opPlan) // no revision, steps or tools
	a.tool(a.id(), root, "search")
	a.agent(root, pcommon.SpanID{}, "planner", fixtureEpoch)
	h.feed(td)
	md := h.flush()
	_, rejected := metricByName(md, sc.MetricSLISpansRejected)
	assert.False(t, rejected)
	assert.Equal(t, [2]float64{1, 1}, runScores(t, md, sc.MetricSLIPlanAdherence)["planner"], "the run is still scored")

	td = ptrace.NewTraces()
	a = newAgentTrace(td)
	a.span(a.id(), pcommon.SpanID{}, opPlan).Attributes().PutEmptySlice(sc.AttrPlanSteps).AppendEmpty().SetStr("search")
	bad := a.span(a.id(), pcommon.SpanID{}, opPlan)
	bad.Attributes().PutStr(sc.AttrPlanRevision, "0")
	h.feed(td)
	md = h.flush()
	assert.Equal(t, int64(1), rejectedBy(md, reasonMissingAttribute), "steps without a revision")
	assert.Equal(t, int64(1), rejectedBy(md, reasonWrongType), "a revision that is not an int")
}

// A sub-agent's spans end, and so arrive, before its parent's. A tool the user wrapped in their own
// span still belongs to the agent above that span, not to the agent that arrived first.
func TestToolUnderUserSpanBelongsToItsNearestAgent(t *testing.T) {
	h := newHarness(t, testConfig())
	td := ptrace.NewTraces()
	a := newAgentTrace(td)
	outer, inner, wrapper, innerWrapper, sub := a.id(), a.id(), a.id(), a.id(), a.id()
	start := a.at
	a.plan(outer, "search", "delegate", "book")
	a.tool(a.id(), wrapper, "search") // outer -> wrapper -> search
	a.span(wrapper, outer, "")
	a.plan(inner, "lookup")
	a.tool(a.id(), innerWrapper, "lookup") // outer -> delegate -> inner -> innerWrapper -> lookup
	a.span(innerWrapper, inner, "")
	a.agent(inner, sub, "inner", start.Add(time.Second))
	a.tool(sub, outer, "delegate")
	a.tool(a.id(), outer, "book")
	a.agent(outer, pcommon.SpanID{}, "outer", start)
	h.feed(td)
	md := h.flush()
	for _, metric := range []string{sc.MetricSLIPlanAdherence, sc.MetricSLIPlanPrecision, sc.MetricSLIPlanRecall} {
		got := runScores(t, md, metric)
		assert.Equal(t, [2]float64{1, 1}, got["outer"], metric)
		assert.Equal(t, [2]float64{1, 1}, got["inner"], metric)
	}
}

// When the span between a tool and its agent never arrives, the tool goes to the outermost agent,
// not to the sub-agent that happened to arrive first.
func TestToolWithoutKnownAgentAncestorGoesToOutermostAgent(t *testing.T) {
	h := newHarness(t, testConfig())
	td := ptrace.NewTraces()
	a := newAgentTrace(td)
	outer, inner, lost := a.id(), a.id(), a.id()
	start := a.at
	a.plan(outer, "search")
	a.plan(inner, "lookup")
	a.tool(a.id(), inner, "lookup")
	a.agent(inner, outer, "inner", start.Add(time.Second))
	a.tool(a.id(), lost, "search") // its parent span is never sent
	a.agent(outer, pcommon.SpanID{}, "outer", start)
	h.feed(td)
	md := h.flush()
	got := runScores(t, md, sc.MetricSLIPlanRecall)
	assert.Equal(t, [2]float64{1, 1}, got["outer"])
	assert.Equal(t, [2]float64{1, 1}, got["inner"])
}

// recordOnRoot puts on a root span what the SDK records about the whole run (run.py, _finish).
func recordOnRoot(s ptrace.Span, executed []string, planned bool, replans int64) {
	sl := s.Attributes().PutEmptySlice(sc.AttrAgentExecutedTools)
	for _, name := range executed {
		sl.AppendEmpty().SetStr(name)
	}
	if planned {
		s.Attributes().PutEmptySlice(sc.AttrAgentPlannedTools)
		s.Attributes().PutInt(sc.AttrAgentReplans, replans)
	}
}

// rootSpan appends an invoke_agent span and returns it (agentTrace.agent does not).
func (a *agentTrace) root(id pcommon.SpanID, name string) ptrace.Span {
	s := a.span(id, pcommon.SpanID{}, opInvokeAgent)
	s.Attributes().PutStr(sc.AttrGenAIAgentName, name)
	return s
}

// splitCounts returns split.part -> count of llmotel.sli.agent.runs.split (agent name "" for fragments).
func splitCounts(md pmetric.Metrics) map[string]int64 {
	out := map[string]int64{}
	m, ok := metricByName(md, sc.MetricSLIAgentRunsSplit)
	if !ok {
		return out
	}
	dps := m.Sum().DataPoints()
	for i := 0; i < dps.Len(); i++ {
		part, _ := dps.At(i).Attributes().Get(sc.AttrSLISplitPart)
		agent, _ := dps.At(i).Attributes().Get(sc.AttrGenAIAgentName)
		out[agent.Str()+"/"+part.Str()] += dps.At(i).IntValue()
	}
	return out
}

func adherenceRuns(t *testing.T, md pmetric.Metrics) map[string][2]float64 {
	t.Helper()
	if _, ok := metricByName(md, sc.MetricSLIPlanAdherence); !ok {
		return map[string][2]float64{}
	}
	return runScores(t, md, sc.MetricSLIPlanAdherence)
}

// A load-balancing tier re-routed the trace mid-run: this collector got the root, the plan and one of
// the three tools; the others (one of them unplanned) went to another collector. Scored from this part,
// the run would show "book" skipped and no extra step: wrong both ways. It is counted as split instead.
func TestRunMissingToolsIsSplitNotScored(t *testing.T) {
	h := newHarness(t, testConfig())
	td := ptrace.NewTraces()
	a := newAgentTrace(td)
	root := a.id()
	a.plan(root, "search", "book")
	a.tool(a.id(), root, "search")
	// "send_email" (unplanned) and "book" ran, but their spans reached another gateway.
	recordOnRoot(a.root(root, "travel"), []string{"search", "send_email", "book"}, true, 0)
	h.feed(td)
	md := h.flush()
	assert.Empty(t, adherenceRuns(t, md), "a part of a run is not scored")
	assert.Equal(t, map[string]int64{"travel/root": 1}, splitCounts(md))
	_, steps := metricByName(md, sc.MetricSLIPlanSteps)
	assert.False(t, steps, "no skipped steps reported for the tools that went elsewhere")
}

// The root recorded a plan, but the plan span went to another collector: not a run without a plan
// (which would silently drop out of adherence), a split run.
func TestRunWhosePlanWentElsewhereIsSplit(t *testing.T) {
	h := newHarness(t, testConfig())
	td := ptrace.NewTraces()
	a := newAgentTrace(td)
	root := a.id()
	a.tool(a.id(), root, "search")
	recordOnRoot(a.root(root, "travel"), []string{"search"}, true, 0)
	h.feed(td)
	md := h.flush()
	assert.Equal(t, map[string]int64{"travel/root": 1}, splitCounts(md))

	// Without the SDK's record, a tool naming a plan revision that never arrived says the same.
	td = ptrace.NewTraces()
	a = newAgentTrace(td)
	a.trace = pcommon.TraceID{0xa9, 2}
	root = a.id()
	a.span(a.id(), root, opExecuteTool).Attributes().PutStr(sc.AttrGenAIToolName, "search")
	a.spans.At(a.spans.Len()-1).Attributes().PutInt(sc.AttrPlanRevision, 1)
	a.plan(root, "search") // revision 0 only: the re-plan (revision 1) is elsewhere
	a.agent(root, pcommon.SpanID{}, "travel", fixtureEpoch)
	h.feed(td)
	md = h.flush()
	assert.Equal(t, map[string]int64{"travel/root": 2}, splitCounts(md), "cumulative")
	assert.Empty(t, adherenceRuns(t, md))
}

// The same run whole: scored as before, nothing split. A tool span that arrives twice (a retried
// export) is more than the root recorded, not fewer: not a split.
func TestWholeRunWithRecordIsScored(t *testing.T) {
	h := newHarness(t, testConfig())
	td := ptrace.NewTraces()
	a := newAgentTrace(td)
	root, tool := a.id(), a.id()
	a.plan(root, "search", "book")
	a.tool(tool, root, "search")
	a.tool(a.id(), root, "book")
	recordOnRoot(a.root(root, "travel"), []string{"search", "book"}, true, 0)
	h.feed(td)
	md := h.flush()
	assert.Equal(t, [2]float64{1, 1}, adherenceRuns(t, md)["travel"])
	assert.Empty(t, splitCounts(md))

	// A root with no record (another SDK) and a plan that arrived: scored as before.
	td = ptrace.NewTraces()
	a = newAgentTrace(td)
	a.trace = pcommon.TraceID{0xa9, 3}
	root = a.id()
	a.plan(root, "search")
	a.tool(a.id(), root, "search")
	a.agent(root, pcommon.SpanID{}, "other", fixtureEpoch)
	h.feed(td)
	md = h.flush()
	assert.Equal(t, [2]float64{1, 1}, adherenceRuns(t, md)["other"])
	assert.Empty(t, splitCounts(md))
}

// The other collector's side of a split: a plan and a planned tool whose root never arrives are
// counted as a split fragment once they expire (max_age); a tool outside any run is not.
func TestFragmentWithoutRootIsCountedWhenItExpires(t *testing.T) {
	cfg := testConfig()
	cfg.TraceBuffer.MaxAge = time.Minute
	h := newHarness(t, cfg)
	td := ptrace.NewTraces()
	a := newAgentTrace(td)
	root := a.id()
	a.plan(root, "search")
	b := newAgentTrace(td)
	b.trace = pcommon.TraceID{0xa9, 4}
	b.tool(b.id(), pcommon.SpanID{}, "lookup") // no revision: a tool outside any run
	h.feed(td)
	assert.Empty(t, splitCounts(h.flush()), "not before max_age")
	h.clock.Advance(time.Minute)
	md := h.flush()
	assert.Equal(t, map[string]int64{"/fragment": 1}, splitCounts(md))
}

// An at-least-once tier re-sends a batch (the agent tier killed with exports in flight): a tool span that
// arrives twice counts once (not a repeated, extra step), and the whole run sent again after it was
// scored is dropped, not scored twice or counted split.
func TestResentSpansCountOnce(t *testing.T) {
	h := newHarness(t, testConfig())
	build := func() ptrace.Traces {
		td := ptrace.NewTraces()
		a := newAgentTrace(td)
		root, tool := a.id(), a.id()
		a.plan(root, "search", "book")
		a.tool(tool, root, "search")
		a.tool(tool, root, "search") // the same span id again
		a.tool(a.id(), root, "book")
		recordOnRoot(a.root(root, "travel"), []string{"search", "book"}, true, 0)
		return td
	}
	h.feed(build())
	md := h.flush()
	assert.Equal(t, [2]float64{1, 1}, adherenceRuns(t, md)["travel"], "the duplicate tool is not an extra step")
	_, steps := metricByName(md, sc.MetricSLIPlanSteps)
	assert.False(t, steps)
	h.feed(build()) // the whole run re-sent after it was scored
	md = h.flush()
	assert.Equal(t, [2]float64{1, 1}, adherenceRuns(t, md)["travel"], "still one run")
	assert.Empty(t, splitCounts(md))
}
