package llmsliconnector

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"

	sc "github.com/llmotel/llmotel/collector/llmsliconnector/internal/semconv"
)

// Spans shaped as the peer instrumentations set them (sources cited in peerattrs.go): the SLIs llm_sli
// computes for llmotel's spans come out of theirs, under the same metric names.

type peerSpan struct {
	scope   string
	kind    ptrace.SpanKind
	attrs   map[string]any
	events  []string // names, 10 ms apart from firstAt
	firstAt time.Duration
	dur     time.Duration
}

func peerTraces(t *testing.T, g *ids, spans ...peerSpan) ptrace.Traces {
	t.Helper()
	td := ptrace.NewTraces()
	for _, p := range spans {
		ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
		ss.Scope().SetName(p.scope)
		s := ss.Spans().AppendEmpty()
		s.SetTraceID(g.trace())
		s.SetSpanID(g.span())
		s.SetKind(p.kind)
		s.SetName("chat gpt-4o-mini")
		start := fixtureEpoch
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(p.dur)))
		require.NoError(t, s.Attributes().FromRaw(p.attrs))
		for i, name := range p.events {
			e := s.Events().AppendEmpty()
			e.SetName(name)
			e.SetTimestamp(pcommon.NewTimestampFromTime(start.Add(p.firstAt + time.Duration(i)*10*time.Millisecond)))
		}
	}
	return td
}

// series sums a histogram's (count, sum) or a counter's value over the points whose attributes include want.
func series(t *testing.T, md pmetric.Metrics, metric string, want map[string]string) (count, sum float64) {
	t.Helper()
	m, ok := metricByName(md, metric)
	if !ok {
		return 0, 0
	}
	match := func(a pcommon.Map) bool {
		for k, v := range want {
			if got, ok := a.Get(k); !ok || got.Str() != v {
				return false
			}
		}
		return true
	}
	switch m.Type() {
	case pmetric.MetricTypeHistogram:
		dps := m.Histogram().DataPoints()
		for i := 0; i < dps.Len(); i++ {
			if match(dps.At(i).Attributes()) {
				count += float64(dps.At(i).Count())
				sum += dps.At(i).Sum()
			}
		}
	case pmetric.MetricTypeSum:
		dps := m.Sum().DataPoints()
		for i := 0; i < dps.Len(); i++ {
			if dp := dps.At(i); match(dp.Attributes()) {
				count++
				if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
					sum += float64(dp.IntValue())
				} else {
					sum += dp.DoubleValue()
				}
			}
		}
	default:
		t.Fatalf("%s: unexpected type %v", metric, m.Type())
	}
	return count, sum
}

func TestPeerSpansYieldSLIs(t *testing.T) {
	cfg := testConfig()
	cfg.TenantAttributes = append(cfg.TenantAttributes, sc.AttrGenAIUser)
	h := newHarness(t, cfg)
	g := &ids{}
	ms := time.Millisecond
	h.feed(peerTraces(t, g,
		// opentelemetry-instrumentation-genai-openai 1.3b0, streamed: current names, TTFC attribute.
		peerSpan{scope: "opentelemetry.instrumentation.genai.openai", kind: ptrace.SpanKindClient, dur: 900 * ms, attrs: map[string]any{
			"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
			"gen_ai.response.model": "gpt-4o-mini-2025-06-01", "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 20,
			"gen_ai.usage.cache_read.input_tokens": 64, "gen_ai.response.time_to_first_chunk": 0.25, "user.id": "acme",
		}},
		// opentelemetry-instrumentation-openai-v2 2.4b0 default mode: gen_ai.system, no TTFC; enduser.id set by the app.
		peerSpan{scope: "opentelemetry.instrumentation.openai_v2", kind: ptrace.SpanKindClient, dur: 500 * ms, attrs: map[string]any{
			"gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini",
			"gen_ai.response.model": "gpt-4o-mini-2024-11-20", "gen_ai.usage.input_tokens": 50, "gen_ai.usage.output_tokens": 10,
			"enduser.id": "globex",
		}},
		// OpenLLMetry 0.62.4, streamed: one event per chunk, the request's user as gen_ai.user.
		peerSpan{scope: "opentelemetry.instrumentation.openai.v1", kind: ptrace.SpanKindClient, dur: 800 * ms,
			events: []string{"gen_ai.content.completion.chunk", "gen_ai.content.completion.chunk"}, firstAt: 300 * ms,
			attrs: map[string]any{
				"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
				"gen_ai.response.model": "gpt-4o-mini-2025-06-01", "gen_ai.usage.input_tokens": 30, "gen_ai.usage.output_tokens": 7,
				"gen_ai.user": "initech", "llm.request.type": "chat",
			}},
		// OpenInference: INTERNAL, no gen_ai.operation.name, llm.* names, a first-token event.
		peerSpan{scope: "openinference.instrumentation.openai", kind: ptrace.SpanKindInternal, dur: 700 * ms,
			events: []string{"First Token Stream Event"}, firstAt: 200 * ms,
			attrs: map[string]any{
				"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini", "llm.provider": "openai",
				"llm.token_count.prompt": 40, "llm.token_count.completion": 5, "llm.token_count.prompt_details.cache_read": 32,
				"user.id": "acme",
			}},
		// Not calls: a peer's other CLIENT operation, an OpenInference chain span, a plain HTTP client span.
		peerSpan{scope: "opentelemetry.instrumentation.genai.openai", kind: ptrace.SpanKindClient, dur: ms, attrs: map[string]any{
			"gen_ai.operation.name": "fetch_response", "gen_ai.provider.name": "openai",
		}},
		peerSpan{scope: "openinference.instrumentation.langchain", kind: ptrace.SpanKindInternal, dur: ms, attrs: map[string]any{
			"openinference.span.kind": "CHAIN",
		}},
		peerSpan{scope: "opentelemetry.instrumentation.httpx", kind: ptrace.SpanKindClient, dur: ms, attrs: map[string]any{
			"http.response.status_code": 200,
		}},
	))
	md := h.flush()
	model := map[string]string{sc.AttrGenAIRequestModel: "gpt-4o-mini"}
	n, sum := series(t, md, sc.MetricSLIRequestDuration, model)
	assert.Equal(t, 4.0, n, "four calls, nothing else")
	assert.InDelta(t, 0.9+0.5+0.8+0.7, sum, 1e-9)

	// TTFT: the attribute, the first chunk event, the first token event; none for openai-v2.
	n, sum = series(t, md, sc.MetricSLITimeToFirstToken, map[string]string{sc.AttrPhaseSource: sc.AttrPhaseSourceClient})
	assert.Equal(t, 3.0, n)
	assert.InDelta(t, 0.25+0.3+0.2, sum, 1e-9)

	// Tenants from user.id, enduser.id, gen_ai.user (configured); tokens under every name.
	for tenant, want := range map[string][3]float64{"acme": {140, 25, 96}, "globex": {50, 10, 0}, "initech": {30, 7, 0}} {
		_, in := series(t, md, sc.MetricSLIInputTokens, map[string]string{sc.AttrTenantID: tenant})
		_, out := series(t, md, sc.MetricSLIOutputTokens, map[string]string{sc.AttrTenantID: tenant})
		_, cached := series(t, md, sc.MetricSLICacheReadTokens, map[string]string{sc.AttrTenantID: tenant})
		assert.Equal(t, want, [3]float64{in, out, cached}, tenant)
	}
	// Provider from gen_ai.provider.name, gen_ai.system, llm.provider.
	_, reqs := series(t, md, sc.MetricSLIRequests, map[string]string{sc.AttrGenAIProviderName: "openai"})
	assert.Equal(t, 4.0, reqs)
	// Revision drift from gen_ai.response.model: two snapshots of one model, two changes in arrival order
	// (OpenInference sets no response model).
	_, changes := series(t, md, sc.MetricSLIRevisionChanges, model)
	assert.Equal(t, 2.0, changes)
	assert.Zero(t, rejectedBy(md, reasonMissingAttribute)+rejectedBy(md, reasonWrongType))
}

// llmotel's own spans keep the wider rule (any operation but the agent ones), peers only inference operations.
func TestPeerOperationsAreNarrowerThanLLMotels(t *testing.T) {
	h := newHarness(t, testConfig())
	g := &ids{}
	call := func(scope string) peerSpan {
		return peerSpan{scope: scope, kind: ptrace.SpanKindClient, dur: time.Second, attrs: map[string]any{
			"gen_ai.operation.name": "responses", "gen_ai.request.model": "m",
		}}
	}
	h.feed(peerTraces(t, g, call(llmotelScope), call("opentelemetry.instrumentation.genai.openai")))
	n, _ := series(t, h.flush(), sc.MetricSLIRequestDuration, nil)
	assert.Equal(t, 1.0, n)
}

// A user's tenant_attributes replace the default list; [] reads none.
func TestTenantAttributesConfig(t *testing.T) {
	for _, tc := range []struct {
		raw  map[string]any
		want []string
	}{
		{map[string]any{}, []string{sc.AttrUserID, sc.AttrEnduserID}},
		{map[string]any{"tenant_attributes": []any{"gen_ai.user"}}, []string{sc.AttrGenAIUser}},
		{map[string]any{"tenant_attributes": []any{}}, []string{}},
	} {
		cfg := createDefaultConfig().(*Config)
		require.NoError(t, confmap.NewFromStringMap(tc.raw).Unmarshal(cfg))
		assert.Equal(t, tc.want, cfg.TenantAttributes)
	}
}

// A peer's span is judged like llmotel's: a wrongly typed peer name or no model at all rejects it.
func TestBadPeerSpansAreRejected(t *testing.T) {
	h := newHarness(t, testConfig())
	g := &ids{}
	oi := func(attrs map[string]any) peerSpan {
		attrs["openinference.span.kind"] = "LLM"
		return peerSpan{scope: "openinference.instrumentation.openai", kind: ptrace.SpanKindInternal, dur: time.Second, attrs: attrs}
	}
	h.feed(peerTraces(t, g,
		oi(map[string]any{"llm.model_name": "m", "llm.token_count.prompt": "12"}),
		oi(map[string]any{"llm.token_count.prompt": 12}),
		oi(map[string]any{"llm.model_name": "m", "llm.token_count.prompt": 10, "llm.token_count.prompt_details.cache_read": 11}),
	))
	md := h.flush()
	assert.Equal(t, int64(1), rejectedBy(md, reasonWrongType))
	assert.Equal(t, int64(1), rejectedBy(md, reasonMissingAttribute))
	assert.Equal(t, int64(1), rejectedBy(md, reasonInvalidValue), "more cache reads than input tokens")
	n, _ := series(t, md, sc.MetricSLIRequestDuration, nil)
	assert.Zero(t, n)
}
