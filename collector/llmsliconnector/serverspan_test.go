package llmsliconnector

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"

	sc "github.com/llmotel/llmotel/collector/llmsliconnector/internal/semconv"
)

// Expectations and their arithmetic: testdata/server_join.md.

// vllmSpan appends the SERVER span vLLM exports per request (vllm/v1/engine/output_processor.py do_tracing
// @ d0782260; names from vllm/tracing/utils.py SpanAttributes): "llm_request", parent from traceparent,
// start at arrival, latencies in float seconds, finish reasons as a JSON string.
func vllmSpan(b batch, g *ids, traceID pcommon.TraceID, parent pcommon.SpanID, start time.Time) {
	s := b.spans.AppendEmpty()
	s.SetName("llm_request")
	s.SetKind(ptrace.SpanKindServer)
	s.SetTraceID(traceID)
	s.SetSpanID(g.span())
	s.SetParentSpanID(parent)
	s.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
	s.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(1250 * time.Millisecond)))
	a := s.Attributes()
	a.PutInt(sc.AttrGenAIUsagePromptTokens, 10)
	a.PutInt(sc.AttrGenAIUsageCompletionTokens, 11)
	a.PutStr(sc.AttrGenAIRequestID, "chatcmpl-1")
	a.PutInt(sc.AttrGenAIRequestMaxTokens, 64)
	a.PutStr(sc.AttrGenAIResponseFinishReasons, `["stop"]`)
	a.PutDouble(sc.AttrGenAILatencyTimeInQueue, 0.050)
	a.PutDouble(sc.AttrGenAILatencyTimeToFirstToken, 0.320)
	a.PutDouble(sc.AttrGenAILatencyE2e, 1.250)
	a.PutDouble(sc.AttrGenAILatencyTimeInModelPrefill, 0.250)
	a.PutDouble(sc.AttrGenAILatencyTimeInModelDecode, 0.900)
	a.PutDouble(sc.AttrGenAILatencyTimeInModelInference, 1.150)
}

var joinPhases = []phaseSpec{
	{sc.AttrPhaseNameQueue, sc.AttrPhaseSourceEstimated, 200 * time.Millisecond},
	{sc.AttrPhaseNamePrefill, sc.AttrPhaseSourceEstimated, 200 * time.Millisecond},
	{sc.AttrPhaseNameFirstToken, sc.AttrPhaseSourceEstimated, 100 * time.Millisecond},
	{sc.AttrPhaseNameDecode, sc.AttrPhaseSourceClient, time.Second},
}

func joinCall(b batch, g *ids) (pcommon.TraceID, pcommon.SpanID) {
	return b.call(g, callSpec{provider: "openai", model: "m", region: "us", input: 10, output: 11, ttft: 0.5, phases: joinPhases})
}

// point finds the data point of a histogram whose attributes include every want pair.
func histPoint(t *testing.T, md pmetric.Metrics, name string, want map[string]string) (pmetric.HistogramDataPoint, bool) {
	t.Helper()
	m, ok := metricByName(md, name)
	if !ok {
		return pmetric.HistogramDataPoint{}, false
	}
	dps := m.Histogram().DataPoints()
	for i := 0; i < dps.Len(); i++ {
		match := true
		for k, v := range want {
			got, ok := dps.At(i).Attributes().Get(k)
			if !ok || got.Str() != v {
				match = false
				break
			}
		}
		if match {
			return dps.At(i), true
		}
	}
	return pmetric.HistogramDataPoint{}, false
}

func assertSum(t *testing.T, md pmetric.Metrics, name string, want map[string]string, sum float64) {
	t.Helper()
	dp, ok := histPoint(t, md, name, want)
	require.True(t, ok, "%s %v missing", name, want)
	assert.Equal(t, uint64(1), dp.Count(), "%s %v", name, want)
	assert.InDelta(t, sum, dp.Sum(), 1e-9, "%s %v", name, want)
}

func assertJoined(t *testing.T, md pmetric.Metrics) {
	t.Helper()
	ph := func(name, source string) map[string]string {
		return map[string]string{sc.AttrGenAIRequestModel: "m", sc.AttrServerRegion: "us", sc.AttrPhaseName: name, sc.AttrPhaseSource: source}
	}
	assertSum(t, md, sc.MetricSLIPhaseDuration, ph("queue", "server"), 0.050)
	assertSum(t, md, sc.MetricSLIPhaseDuration, ph("prefill", "server"), 0.250)
	assertSum(t, md, sc.MetricSLIPhaseDuration, ph("first_token", "estimated"), 0.100)
	assertSum(t, md, sc.MetricSLIPhaseDuration, ph("decode", "server"), 0.900)
	for _, gone := range []map[string]string{ph("queue", "estimated"), ph("prefill", "estimated"), ph("decode", "client")} {
		_, ok := histPoint(t, md, sc.MetricSLIPhaseDuration, gone)
		assert.False(t, ok, "the SDK's %v must be replaced", gone)
	}
	e := func(name string) map[string]string {
		return map[string]string{sc.AttrGenAIRequestModel: "m", sc.AttrServerRegion: "us", sc.AttrPhaseName: name}
	}
	assertSum(t, md, sc.MetricSLIPhaseEstimateError, e("queue"), 0.30)
	assertSum(t, md, sc.MetricSLIPhaseEstimateError, e("prefill"), -0.10)
	assertSum(t, md, sc.MetricSLIPhaseEstimateError, e("decode"), 0.20)
	assertSum(t, md, sc.MetricSLITimeToFirstToken, map[string]string{sc.AttrPhaseSource: "client"}, 0.5)
	assertSum(t, md, sc.MetricSLITimePerOutputToken, map[string]string{sc.AttrPhaseSource: "server"}, 0.09)
	_, rejected := metricByName(md, sc.MetricSLISpansRejected)
	assert.False(t, rejected)
}

func TestServerSpanBeforeCallReplacesPhases(t *testing.T) {
	h := newHarness(t, testConfig())
	td := ptrace.NewTraces()
	server, app := newBatch(td, "vllm"), newBatch(td, "app")
	g := &ids{}
	traceID, callID := joinCall(app, g)
	vllmSpan(server, g, traceID, callID, fixtureEpoch)
	h.feed(td) // the server's batch first, the app's next
	assertJoined(t, h.flush())
}

func TestCallBeforeServerSpanJoinsWhenCallsAreHeld(t *testing.T) {
	cfg := testConfig()
	cfg.ServerSpans.HoldCalls = time.Minute
	h := newHarness(t, cfg)
	td := ptrace.NewTraces()
	app, server := newBatch(td, "app"), newBatch(td, "vllm")
	g := &ids{}
	traceID, callID := joinCall(app, g)
	vllmSpan(server, g, traceID, callID, fixtureEpoch)
	h.feed(td)
	assertJoined(t, h.flush())
}

func TestHeldCallWithoutServerSpanKeepsSDKPhases(t *testing.T) {
	cfg := testConfig()
	cfg.ServerSpans.HoldCalls = 10 * time.Second
	h := newHarness(t, cfg)
	td := ptrace.NewTraces()
	g := &ids{}
	joinCall(newBatch(td, "app"), g)
	h.feed(td)
	md := h.conn.collect(false)
	_, ok := metricByName(md, sc.MetricSLITimeToFirstToken)
	assert.False(t, ok, "held: nothing recorded before hold_calls is over")
	h.clock.Advance(10 * time.Second)
	md = h.conn.collect(false)
	assertSum(t, md, sc.MetricSLIPhaseDuration, map[string]string{sc.AttrPhaseName: "queue", sc.AttrPhaseSource: "estimated"}, 0.200)
	_, ok = metricByName(md, sc.MetricSLIPhaseEstimateError)
	assert.False(t, ok)
}

func TestOrphanServerSpanYieldsServerSLIs(t *testing.T) {
	h := newHarness(t, testConfig())
	td := ptrace.NewTraces()
	g := &ids{}
	vllmSpan(newBatch(td, "vllm"), g, g.trace(), g.span(), fixtureEpoch) // its call never arrives
	h.feed(td)
	md := h.conn.collect(false)
	_, ok := metricByName(md, sc.MetricSLIPhaseDuration)
	assert.False(t, ok, "waits server_spans.wait for its call")
	h.clock.Advance(h.conn.cfg.ServerSpans.Wait)
	md = h.conn.collect(false)
	srv := func(name string) map[string]string {
		return map[string]string{sc.AttrPhaseName: name, sc.AttrPhaseSource: "server"} // model: none (vLLM names none)
	}
	assertSum(t, md, sc.MetricSLIPhaseDuration, srv("queue"), 0.050)
	assertSum(t, md, sc.MetricSLIPhaseDuration, srv("prefill"), 0.250)
	assertSum(t, md, sc.MetricSLIPhaseDuration, srv("decode"), 0.900)
	assertSum(t, md, sc.MetricSLITimeToFirstToken, map[string]string{sc.AttrPhaseSource: "server"}, 0.320)
	assertSum(t, md, sc.MetricSLIRequestDuration, map[string]string{}, 1.250)
	assertSum(t, md, sc.MetricSLITimePerOutputToken, map[string]string{sc.AttrPhaseSource: "server"}, 0.09)
}

func TestServerSpanAfterRecordedCallIsCountedLate(t *testing.T) {
	h := newHarness(t, testConfig()) // hold_calls 0: calls are recorded at once
	td := ptrace.NewTraces()
	app, server := newBatch(td, "app"), newBatch(td, "vllm")
	g := &ids{}
	traceID, callID := joinCall(app, g)
	vllmSpan(server, g, traceID, callID, fixtureEpoch)
	h.feed(td)
	md := h.flush()
	assertSum(t, md, sc.MetricSLIPhaseDuration, map[string]string{sc.AttrPhaseName: "queue", sc.AttrPhaseSource: "estimated"}, 0.200)
	m, ok := metricByName(md, sc.MetricSLISpansRejected)
	require.True(t, ok)
	reason, _ := m.Sum().DataPoints().At(0).Attributes().Get(sc.AttrSLIReason)
	assert.Equal(t, reasonLateServerSpan, reason.Str())
}

func TestLateServerSpansMakeLaterCallsOfTheirModelWait(t *testing.T) {
	cfg := testConfig() // hold_calls 0
	cfg.ServerSpans.AutoHold = 10 * time.Second
	h := newHarness(t, cfg)
	g := &ids{}
	// The first call's server span comes after it: counted late, and model "m" is marked.
	td := ptrace.NewTraces()
	app, server := newBatch(td, "app"), newBatch(td, "vllm")
	traceID, callID := joinCall(app, g)
	vllmSpan(server, g, traceID, callID, fixtureEpoch)
	h.feed(td)
	md := h.flush()
	m, ok := metricByName(md, sc.MetricSLISpansRejected)
	require.True(t, ok)
	reason, _ := m.Sum().DataPoints().At(0).Attributes().Get(sc.AttrSLIReason)
	assert.Equal(t, reasonLateServerSpan, reason.Str())
	// The next call of "m" waits for its server span, which comes in a later batch: joined.
	td = ptrace.NewTraces()
	traceID, callID = joinCall(newBatch(td, "app"), g)
	h.feed(td)
	td = ptrace.NewTraces()
	vllmSpan(newBatch(td, "vllm"), g, traceID, callID, fixtureEpoch)
	h.feed(td)
	md = h.flush() // cumulative: the first call (SDK phases) and the second (joined)
	ph := func(name, source string) map[string]string {
		return map[string]string{sc.AttrGenAIRequestModel: "m", sc.AttrServerRegion: "us", sc.AttrPhaseName: name, sc.AttrPhaseSource: source}
	}
	assertSum(t, md, sc.MetricSLIPhaseDuration, ph("queue", "server"), 0.050)
	assertSum(t, md, sc.MetricSLIPhaseDuration, ph("queue", "estimated"), 0.200)
	assertSum(t, md, sc.MetricSLIPhaseEstimateError,
		map[string]string{sc.AttrGenAIRequestModel: "m", sc.AttrServerRegion: "us", sc.AttrPhaseName: "queue"}, 0.30)
}

func TestAutoHoldLeavesOtherModelsAlone(t *testing.T) {
	cfg := testConfig()
	cfg.ServerSpans.AutoHold = 10 * time.Second
	h := newHarness(t, cfg)
	g := &ids{}
	td := ptrace.NewTraces()
	app, server := newBatch(td, "app"), newBatch(td, "vllm")
	traceID, callID := joinCall(app, g)
	vllmSpan(server, g, traceID, callID, fixtureEpoch)
	h.feed(td)
	h.flush()
	// A call of another model is recorded at once (nothing held, nothing delayed).
	td = ptrace.NewTraces()
	newBatch(td, "app").call(g, callSpec{provider: "openai", model: "hosted", region: "us", input: 10, output: 11, ttft: 0.5, phases: joinPhases})
	h.feed(td)
	md := h.conn.collect(false)
	_, ok := histPoint(t, md, sc.MetricSLITimeToFirstToken, map[string]string{sc.AttrGenAIRequestModel: "hosted"})
	assert.True(t, ok, "a model without server spans is not held")
}

func TestServerJoinIsBounded(t *testing.T) {
	cfg := testConfig()
	cfg.ServerSpans.MaxPending = 2
	cfg.ServerSpans.HoldCalls = time.Minute
	h := newHarness(t, cfg)
	g := &ids{}
	for i := 0; i < 5; i++ {
		td := ptrace.NewTraces()
		vllmSpan(newBatch(td, "vllm"), g, g.trace(), g.span(), fixtureEpoch)
		joinCall(newBatch(td, "app"), g) // unrelated calls, held
		require.NoError(t, h.conn.ConsumeTraces(context.Background(), td))
		assert.LessOrEqual(t, len(h.conn.server.servers), 2)
		assert.LessOrEqual(t, len(h.conn.server.calls), 2)
	}
	md := h.conn.collect(false) // the 3 pushed out of each side were recorded, not lost
	dp, ok := histPoint(t, md, sc.MetricSLIPhaseDuration, map[string]string{sc.AttrPhaseName: "queue", sc.AttrPhaseSource: "server"})
	require.True(t, ok)
	assert.Equal(t, uint64(3), dp.Count())
	dp, ok = histPoint(t, md, sc.MetricSLIPhaseDuration, map[string]string{sc.AttrPhaseName: "queue", sc.AttrPhaseSource: "estimated"})
	require.True(t, ok)
	assert.Equal(t, uint64(3), dp.Count())
}
