package llmsliconnector

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/connector/spanmetricsconnector"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/connector"
	"go.opentelemetry.io/collector/connector/connectortest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/llmotel/llmotel/collector/llmsliconnector/internal/metadata"
	sc "github.com/llmotel/llmotel/collector/llmsliconnector/internal/semconv"
)

// benchBatch is 1000 LLM calls (each a call span + 4 phase spans) across 20 tenants, 3 regions and
// 4 models, plus 50 agent runs: 5,000+ spans in one ptrace.Traces, as an SDK batch exporter sends them.
func benchBatch() (ptrace.Traces, int) {
	td := ptrace.NewTraces()
	b := newBatch(td, "app")
	g := &ids{}
	ms := time.Millisecond
	models := []string{"gpt-4o-mini", "gpt-4o", "claude-sonnet-4", "llama-3.1-8b"}
	regions := []string{"us", "eu", "apac"}
	for i := 0; i < 1000; i++ {
		b.call(g, callSpec{provider: "openai", model: models[i%4], revision: fmt.Sprintf("fp_%d", i%3), region: regions[i%3],
			tenant: fmt.Sprintf("tenant-%02d", i%20), input: int64(500 + i%700), output: int64(50 + i%300), cacheRead: int64(i % 400),
			ttft: 0.2 + float64(i%50)/100, fingerprint: fmt.Sprintf("%016x", i%7),
			phases: streamPhases(time.Duration(i%40)*ms, 120*ms, 30*ms, time.Duration(500+i%900)*ms)})
	}
	for i := 0; i < 50; i++ {
		b.run(g, runSpec{agent: "planner", plans: [][]string{{"a", "b", "c"}}, tools: []toolSpec{{"a", 0}, {"c", 0}, {"b", 0}}})
	}
	return td, td.SpanCount()
}

// peerBenchBatch is the same 1000 calls as another instrumentation sends them (opentelemetry-instrumentation-
// genai-openai 1.3b0's attribute set, scope of its own, tenant in user.id, no phase spans), plus the same 50 agent
// runs: the connector reads them through the peer names of peerattrs.go.
func peerBenchBatch() (ptrace.Traces, int) {
	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
	ss.Scope().SetName("opentelemetry.instrumentation.genai.openai")
	g := &ids{}
	models := []string{"gpt-4o-mini", "gpt-4o", "claude-sonnet-4", "llama-3.1-8b"}
	for i := 0; i < 1000; i++ {
		s := ss.Spans().AppendEmpty()
		s.SetName("chat " + models[i%4])
		s.SetKind(ptrace.SpanKindClient)
		s.SetTraceID(g.trace())
		s.SetSpanID(g.span())
		start := fixtureEpoch
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(700+i%900) * time.Millisecond)))
		a := s.Attributes()
		a.PutStr(sc.AttrGenAIOperationName, "chat")
		a.PutStr(sc.AttrGenAIProviderName, "openai")
		a.PutStr(sc.AttrGenAIRequestModel, models[i%4])
		a.PutStr(sc.AttrServerAddress, "api.openai.com")
		a.PutInt(sc.AttrServerPort, 443)
		a.PutBool(sc.AttrGenAIRequestStream, true)
		a.PutEmptySlice(sc.AttrGenAIResponseFinishReasons).AppendEmpty().SetStr("stop")
		a.PutStr(sc.AttrGenAIResponseModel, models[i%4]+"-2025-06-01") // one snapshot per model, as in the llmotel batch
		a.PutStr(sc.AttrGenAIResponseID, fmt.Sprintf("chatcmpl-%d", i))
		a.PutInt(sc.AttrGenAIUsageInputTokens, int64(500+i%700))
		a.PutInt(sc.AttrGenAIUsageOutputTokens, int64(50+i%300))
		a.PutInt(sc.AttrGenAIUsageCacheReadInputTokens, int64(i%400))
		a.PutDouble(sc.AttrGenAIResponseTimeToFirstChunk, 0.2+float64(i%50)/100)
		a.PutStr(sc.AttrUserID, fmt.Sprintf("tenant-%02d", i%20))
	}
	b := newBatch(td, "app")
	for i := 0; i < 50; i++ {
		b.run(g, runSpec{agent: "planner", plans: [][]string{{"a", "b", "c"}}, tools: []toolSpec{{"a", 0}, {"c", 0}, {"b", 0}}})
	}
	return td, td.SpanCount()
}

// The dimensions an operator would ask spanmetrics for to approximate the llm_sli latency series.
func spanMetrics(b *testing.B) connector.Traces {
	return spanMetricsWith(b, sc.AttrGenAIRequestModel, sc.AttrModelRevision, sc.AttrServerRegion, sc.AttrTenantID, sc.AttrPhaseName, sc.AttrPhaseSource)
}

// For another instrumentation's spans: the revision is the response model, the tenant user.id, no phases.
func peerSpanMetrics(b *testing.B) connector.Traces {
	return spanMetricsWith(b, sc.AttrGenAIRequestModel, sc.AttrGenAIResponseModel, sc.AttrUserID)
}

func spanMetricsWith(b *testing.B, dims ...string) connector.Traces {
	f := spanmetricsconnector.NewFactory()
	cfg := f.CreateDefaultConfig().(*spanmetricsconnector.Config)
	for _, d := range dims {
		cfg.Dimensions = append(cfg.Dimensions, spanmetricsconnector.Dimension{Name: d})
	}
	cfg.MetricsFlushInterval = time.Hour
	conn, err := f.CreateTracesToMetrics(context.Background(), connectortest.NewNopSettings(f.Type()), cfg, consumertest.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	return conn
}

func llmSLIConnector(b *testing.B) connector.Traces {
	cfg := createDefaultConfig().(*Config)
	cfg.FlushInterval = time.Hour
	conn, err := NewFactory().CreateTracesToMetrics(context.Background(), connectortest.NewNopSettings(metadata.Type), cfg, consumertest.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	return conn
}

// BenchmarkConsumeTraces compares span ingestion of llm_sli and the upstream spanmetrics connector on
// the same batch: llmotel's (llm_sli, span_metrics) and another instrumentation's (peer_llm_sli,
// peer_span_metrics). spans/s is per benchmark goroutine (one core): bench/collector_bench.py records it.
func BenchmarkConsumeTraces(b *testing.B) {
	own, ownSpans := benchBatch()
	peer, peerSpans := peerBenchBatch()
	for _, tc := range []struct {
		name  string
		make  func(*testing.B) connector.Traces
		td    ptrace.Traces
		spans int
	}{
		{"llm_sli", llmSLIConnector, own, ownSpans}, {"span_metrics", spanMetrics, own, ownSpans},
		{"peer_llm_sli", llmSLIConnector, peer, peerSpans}, {"peer_span_metrics", peerSpanMetrics, peer, peerSpans},
	} {
		td, spans := tc.td, tc.spans
		b.Run(tc.name, func(b *testing.B) {
			conn := tc.make(b)
			ctx := context.Background()
			if err := conn.Start(ctx, componenttest.NewNopHost()); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := conn.ConsumeTraces(ctx, td); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(spans)*float64(b.N)/b.Elapsed().Seconds(), "spans/s")
			if err := conn.Shutdown(ctx); err != nil {
				b.Fatal(err)
			}
		})
	}
}
