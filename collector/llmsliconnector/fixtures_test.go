package llmsliconnector

import (
	"encoding/binary"
	"github.com/llmotel/llmotel/collector/llmsliconnector/internal/clock"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	sc "github.com/llmotel/llmotel/collector/llmsliconnector/internal/semconv"
)

// The fixture builder writes span batches in the exact shape the llmotel SDK emits (docs/semconv.md,
// semconv/registry/spans.yaml): a CLIENT call span with phase children that tile it, and agent runs
// (invoke_agent -> plan / execute_tool). `go test -run TestGolden -update` rewrites testdata/traces
// from it; the tests themselves read only the recorded files.

var fixtureEpoch = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

type ids struct{ next uint64 }

func (g *ids) trace() pcommon.TraceID {
	g.next++
	var t pcommon.TraceID
	binary.BigEndian.PutUint64(t[8:], g.next)
	t[0] = 0x11
	return t
}

func (g *ids) span() pcommon.SpanID {
	g.next++
	var s pcommon.SpanID
	binary.BigEndian.PutUint64(s[:], g.next)
	return s
}

// batch is one ResourceSpans: the tests feed each as its own ConsumeTraces call.
type batch struct{ spans ptrace.SpanSlice }

func newBatch(td ptrace.Traces, service string) batch {
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", service)
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("llmotel")
	return batch{spans: ss.Spans()}
}

type phaseSpec struct {
	name, source string
	dur          time.Duration
}

type callSpec struct {
	provider, model, revision, region, tenant string
	input, output, cacheRead                  int64
	ttft                                      float64 // 0: not a stream
	errorType                                 string
	status                                    int64
	finish                                    string
	stalls                                    int64
	energyWh, carbonG                         float64
	costUSD                                   float64 // 0: price unknown, no llmotel.cost.usd
	fingerprint                               string
	phases                                    []phaseSpec
	at                                        time.Duration // offset from fixtureEpoch
	phasesIn                                  *batch        // put phases in another batch (late/early arrival)
}

func (b batch) call(g *ids, c callSpec) (pcommon.TraceID, pcommon.SpanID) {
	traceID, spanID := g.trace(), g.span()
	start := fixtureEpoch.Add(c.at)
	total := time.Duration(0)
	for _, p := range c.phases {
		total += p.dur
	}
	if total == 0 {
		total = 800 * time.Millisecond
	}
	s := b.spans.AppendEmpty()
	s.SetName("chat " + c.model)
	s.SetKind(ptrace.SpanKindClient)
	s.SetTraceID(traceID)
	s.SetSpanID(spanID)
	s.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
	s.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(total)))
	a := s.Attributes()
	a.PutStr(sc.AttrGenAIOperationName, "chat")
	a.PutStr(sc.AttrGenAIProviderName, c.provider)
	a.PutStr(sc.AttrGenAIRequestModel, c.model)
	if c.revision != "" {
		a.PutStr(sc.AttrGenAIResponseModel, c.model+"-resolved")
		a.PutStr(sc.AttrModelRevision, c.revision)
	}
	if c.region != "" {
		a.PutStr(sc.AttrServerRegion, c.region)
	}
	if c.tenant != "" {
		a.PutStr(sc.AttrTenantID, c.tenant)
	}
	a.PutInt(sc.AttrGenAIUsageInputTokens, c.input)
	a.PutInt(sc.AttrGenAIUsageOutputTokens, c.output)
	a.PutInt(sc.AttrGenAIUsageCacheReadInputTokens, c.cacheRead)
	a.PutBool(sc.AttrGenAIRequestStream, c.ttft > 0)
	if c.ttft > 0 {
		a.PutDouble(sc.AttrGenAIResponseTimeToFirstChunk, c.ttft)
	}
	if c.errorType != "" {
		a.PutStr(sc.AttrErrorType, c.errorType)
		s.Status().SetCode(ptrace.StatusCodeError)
	}
	if c.status != 0 {
		a.PutInt(sc.AttrHTTPResponseStatusCode, c.status)
	}
	if c.finish != "" {
		a.PutEmptySlice(sc.AttrGenAIResponseFinishReasons).AppendEmpty().SetStr(c.finish)
		a.PutBool(sc.AttrResponseTruncated, c.finish == "length")
	}
	if c.stalls > 0 {
		a.PutInt(sc.AttrDecodeStallCount, c.stalls)
	}
	if c.energyWh > 0 {
		a.PutDouble(sc.AttrEnergyWh, c.energyWh)
		a.PutDouble(sc.AttrCarbonGCO2e, c.carbonG)
	}
	if c.costUSD != 0 {
		a.PutDouble(sc.AttrCostUsd, c.costUSD)
	}
	if c.fingerprint != "" {
		a.PutStr(sc.AttrPromptPrefixFingerprint, c.fingerprint)
	}
	target := b
	if c.phasesIn != nil {
		target = *c.phasesIn
	}
	t := start
	for _, p := range c.phases {
		ps := target.spans.AppendEmpty()
		ps.SetName(p.name)
		ps.SetKind(ptrace.SpanKindInternal)
		ps.SetTraceID(traceID)
		ps.SetSpanID(g.span())
		ps.SetParentSpanID(spanID)
		ps.SetStartTimestamp(pcommon.NewTimestampFromTime(t))
		t = t.Add(p.dur)
		ps.SetEndTimestamp(pcommon.NewTimestampFromTime(t))
		ps.Attributes().PutStr(sc.AttrPhaseName, p.name)
		ps.Attributes().PutStr(sc.AttrPhaseSource, p.source)
		conf := 1.0
		if p.source == sc.AttrPhaseSourceEstimated {
			conf = 0.6
		}
		ps.Attributes().PutDouble(sc.AttrPhaseConfidence, conf)
	}
	return traceID, spanID
}

// streamPhases is a streamed call: client-measured first token and decode, estimated queue/prefill.
func streamPhases(queue, prefill, firstToken, decode time.Duration) []phaseSpec {
	return []phaseSpec{
		{sc.AttrPhaseNameQueue, sc.AttrPhaseSourceEstimated, queue},
		{sc.AttrPhaseNamePrefill, sc.AttrPhaseSourceEstimated, prefill},
		{sc.AttrPhaseNameFirstToken, sc.AttrPhaseSourceEstimated, firstToken},
		{sc.AttrPhaseNameDecode, sc.AttrPhaseSourceClient, decode},
	}
}

type runSpec struct {
	agent string
	plans [][]string // revision i's planned tools
	// executed tools: name and the plan revision in force (-1: before any plan)
	tools []toolSpec
	at    time.Duration
}

type toolSpec struct {
	name     string
	revision int
}

// run emits one agent run: children first, then the invoke_agent span (the SDK's export order).
func (b batch) run(g *ids, r runSpec) pcommon.TraceID {
	traceID, agentID := g.trace(), g.span()
	start := fixtureEpoch.Add(r.at)
	t := start
	child := func(name, op string) ptrace.Span {
		s := b.spans.AppendEmpty()
		s.SetName(name)
		s.SetKind(ptrace.SpanKindInternal)
		s.SetTraceID(traceID)
		s.SetSpanID(g.span())
		s.SetParentSpanID(agentID)
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(t))
		t = t.Add(100 * time.Millisecond)
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(t))
		s.Attributes().PutStr(sc.AttrGenAIOperationName, op)
		return s
	}
	planAt := func(rev int) {
		p := child("plan "+r.agent, opPlan)
		p.Attributes().PutInt(sc.AttrPlanRevision, int64(rev))
		steps := p.Attributes().PutEmptySlice(sc.AttrPlanSteps)
		tools := p.Attributes().PutEmptySlice(sc.AttrPlanTools)
		for _, tool := range r.plans[rev] {
			steps.AppendEmpty().SetStr("step:" + tool)
			tools.AppendEmpty().SetStr(tool)
		}
	}
	announced := -1
	for _, tool := range r.tools {
		for announced < tool.revision {
			announced++
			planAt(announced)
		}
		s := child("execute_tool "+tool.name, opExecuteTool)
		s.Attributes().PutStr(sc.AttrGenAIToolName, tool.name)
		if tool.revision >= 0 {
			s.Attributes().PutInt(sc.AttrPlanRevision, int64(tool.revision))
		}
	}
	for announced < len(r.plans)-1 {
		announced++
		planAt(announced)
	}
	a := b.spans.AppendEmpty()
	a.SetName("invoke_agent " + r.agent)
	a.SetKind(ptrace.SpanKindInternal)
	a.SetTraceID(traceID)
	a.SetSpanID(agentID)
	a.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
	a.SetEndTimestamp(pcommon.NewTimestampFromTime(t))
	a.Attributes().PutStr(sc.AttrGenAIOperationName, opInvokeAgent)
	a.Attributes().PutStr(sc.AttrGenAIAgentName, r.agent)
	return traceID
}

func newHarnessClock() *clock.Fake { return clock.NewFake(fixtureEpoch) }
