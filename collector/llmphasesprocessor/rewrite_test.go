package llmphasesprocessor

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor/processortest"
)

var epoch = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func ts(ms int) pcommon.Timestamp {
	return pcommon.NewTimestampFromTime(epoch.Add(time.Duration(ms) * time.Millisecond))
}

func sid(b byte) pcommon.SpanID { return pcommon.SpanID{b} }

// trace builds one llmotel call (span 1) whose phases tile [0, 1500 ms] as the SDK emits them -- queue
// 0-200 (estimated), prefill 200-400 (estimated), first_token 400-500, decode 500-1500 (client) -- plus, when
// withServer, vLLM's llm_request SERVER span (child of the call through traceparent; do_tracing in
// vllm/v1/engine/output_processor.py sets the float-second gen_ai.latency.* attributes), and an unrelated
// user span.
func trace(withServer bool) ptrace.Traces {
	td := ptrace.NewTraces()
	spans := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	tid := pcommon.TraceID{9}
	add := func(id, parent byte, name string, kind ptrace.SpanKind, start, end int) ptrace.Span {
		s := spans.AppendEmpty()
		s.SetTraceID(tid)
		s.SetSpanID(sid(id))
		if parent != 0 {
			s.SetParentSpanID(sid(parent))
		}
		s.SetName(name)
		s.SetKind(kind)
		s.SetStartTimestamp(ts(start))
		s.SetEndTimestamp(ts(end))
		return s
	}
	add(7, 0, "handler", ptrace.SpanKindServer, 0, 1600).Attributes().PutStr("http.route", "/ask")
	call := add(1, 7, "chat m", ptrace.SpanKindClient, 0, 1500)
	call.Attributes().PutStr(attrOperationName, "chat")
	for i, p := range []struct {
		name, source string
		start, end   int
	}{{phaseQueue, "estimated", 0, 200}, {phasePrefill, "estimated", 200, 400}, {phaseFirstToken, "estimated", 400, 500}, {phaseDecode, "client", 500, 1500}} {
		s := add(byte(2+i), 1, p.name, ptrace.SpanKindInternal, p.start, p.end)
		s.Attributes().PutStr(attrPhaseName, p.name)
		s.Attributes().PutStr(attrPhaseSource, p.source)
		if p.source == "estimated" {
			s.Attributes().PutDouble(attrPhaseConfidence, 0.6)
			s.Attributes().PutDouble(attrIntervalLow, 0.1)
			s.Attributes().PutDouble(attrIntervalHigh, 0.3)
		}
	}
	if withServer {
		s := add(8, 1, "llm_request", ptrace.SpanKindServer, 20, 1450)
		a := s.Attributes()
		a.PutDouble(attrQueue, 0.050)
		a.PutDouble(attrPrefill, 0.250)
		a.PutDouble(attrDecode, 0.900)
		a.PutDouble("gen_ai.latency.time_to_first_token", 0.320)
		a.PutDouble("gen_ai.latency.e2e", 1.25)
	}
	return td
}

func byName(td ptrace.Traces) map[string]ptrace.Span {
	out := map[string]ptrace.Span{}
	forEach(td, func(s ptrace.Span) { out[s.Name()] = s })
	return out
}

func ms(t pcommon.Timestamp) float64 {
	return float64(t.AsTime().Sub(epoch)) / float64(time.Millisecond)
}

func TestRewriteUsesMeasuredPhasesAndKeepsTiling(t *testing.T) {
	td := trace(true)
	before := byName(trace(true))
	require.Equal(t, 1, Rewrite(td))
	s := byName(td)
	// queue 0 -> 50 (0.050 s), prefill 50 -> 300 (0.250 s), first_token now 300 -> 500, decode unchanged.
	assert.Equal(t, []float64{0, 50}, []float64{ms(s[phaseQueue].StartTimestamp()), ms(s[phaseQueue].EndTimestamp())})
	assert.Equal(t, []float64{50, 300}, []float64{ms(s[phasePrefill].StartTimestamp()), ms(s[phasePrefill].EndTimestamp())})
	assert.Equal(t, []float64{300, 500}, []float64{ms(s[phaseFirstToken].StartTimestamp()), ms(s[phaseFirstToken].EndTimestamp())})
	for _, p := range []string{phaseQueue, phasePrefill} {
		a := s[p].Attributes()
		src, _ := a.Get(attrPhaseSource)
		est, _ := a.Get(attrEstimatedDuration)
		conf, _ := a.Get(attrPhaseConfidence)
		assert.Equal(t, sourceServer, src.Str())
		assert.InDelta(t, 0.2, est.Double(), 1e-9) // the SDK's 200 ms, kept
		assert.Equal(t, 1.0, conf.Double())
		_, low := a.Get(attrIntervalLow)
		assert.False(t, low, "an interval belongs to estimates only")
	}
	src, _ := s[phaseFirstToken].Attributes().Get(attrPhaseSource)
	assert.Equal(t, "estimated", src.Str())
	for _, name := range []string{"handler", "chat m", "llm_request", phaseDecode} { // everything else unchanged
		assert.Equal(t, before[name].StartTimestamp(), s[name].StartTimestamp(), name)
		assert.Equal(t, before[name].EndTimestamp(), s[name].EndTimestamp(), name)
		assert.Equal(t, before[name].Attributes().AsRaw(), s[name].Attributes().AsRaw(), name)
	}
}

func TestRewriteScalesWhenMeasuredExceedsRoom(t *testing.T) {
	td := trace(true)
	srv := byName(td)["llm_request"].Attributes()
	srv.PutDouble(attrQueue, 0.300)
	srv.PutDouble(attrPrefill, 0.300) // 600 ms measured, 500 ms of room up to the first token: x 5/6
	require.Equal(t, 1, Rewrite(td))
	s := byName(td)
	assert.Equal(t, 250.0, ms(s[phaseQueue].EndTimestamp()))
	assert.Equal(t, 500.0, ms(s[phasePrefill].EndTimestamp()))
	assert.Equal(t, 500.0, ms(s[phaseFirstToken].StartTimestamp())) // zero-length: tiling kept
}

func TestNoServerSpanPassesThrough(t *testing.T) {
	td := trace(false)
	assert.Equal(t, 0, Rewrite(td))
	assert.Equal(t, trace(false), td)
}

func TestProcessorForwards(t *testing.T) {
	sink := &consumertest.TracesSink{}
	f := NewFactory()
	p, err := f.CreateTraces(context.Background(), processortest.NewNopSettings(f.Type()), f.CreateDefaultConfig(), sink)
	require.NoError(t, err)
	require.NoError(t, p.Start(context.Background(), componenttest.NewNopHost()))
	require.NoError(t, p.ConsumeTraces(context.Background(), trace(true)))
	require.NoError(t, p.Shutdown(context.Background()))
	require.Len(t, sink.AllTraces(), 1)
	src, _ := byName(sink.AllTraces()[0])[phaseQueue].Attributes().Get(attrPhaseSource)
	assert.Equal(t, sourceServer, src.Str())
}
