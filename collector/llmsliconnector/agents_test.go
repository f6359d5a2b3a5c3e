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
