package llmsliconnector

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/connector/connectortest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/llmotel/llmotel/collector/llmsliconnector/internal/metadata"
	sc "github.com/llmotel/llmotel/collector/llmsliconnector/internal/semconv"
)

func metricByName(md pmetric.Metrics, name string) (pmetric.Metric, bool) {
	for i := 0; i < md.ResourceMetrics().Len(); i++ {
		sms := md.ResourceMetrics().At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				if ms.At(k).Name() == name {
					return ms.At(k), true
				}
			}
		}
	}
	return pmetric.Metric{}, false
}

func TestFactoryBuildsRunningConnector(t *testing.T) {
	f := NewFactory()
	assert.Equal(t, metadata.Type, f.Type())
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.FlushInterval = 20 * time.Millisecond
	sink := &consumertest.MetricsSink{}
	conn, err := f.CreateTracesToMetrics(context.Background(), connectortest.NewNopSettings(metadata.Type), cfg, sink)
	require.NoError(t, err)
	require.NoError(t, conn.Start(context.Background(), componenttest.NewNopHost()))
	require.NoError(t, conn.ConsumeTraces(context.Background(), scenarioLatencyCache()))
	require.Eventually(t, func() bool { return len(sink.AllMetrics()) > 0 }, 5*time.Second, 10*time.Millisecond,
		"the flush loop must emit without being asked")
	require.NoError(t, conn.Shutdown(context.Background()))
	_, ok := metricByName(sink.AllMetrics()[0], sc.MetricSLITimeToFirstToken)
	assert.True(t, ok)
}

func TestShutdownFlushesAndIsIdempotent(t *testing.T) {
	sink := &consumertest.MetricsSink{}
	cfg := testConfig()
	cfg.FlushInterval = time.Hour
	conn := newConnector(connectortest.NewNopSettings(metadata.Type), cfg, sink, newHarnessClock())
	require.NoError(t, conn.Start(context.Background(), componenttest.NewNopHost()))
	require.NoError(t, conn.ConsumeTraces(context.Background(), scenarioAgents()))
	require.NoError(t, conn.Shutdown(context.Background()))
	require.Len(t, sink.AllMetrics(), 1, "shutdown flushes once")
	// Runs whose wait had not elapsed are still scored at shutdown.
	m, ok := metricByName(sink.AllMetrics()[0], sc.MetricSLIPlanAdherence)
	require.True(t, ok)
	assert.Equal(t, 2, m.Histogram().DataPoints().Len())
	require.NoError(t, conn.Shutdown(context.Background()))
	require.NoError(t, conn.ConsumeTraces(context.Background(), scenarioAgents()), "spans after shutdown are dropped, not an error")
	assert.Len(t, sink.AllMetrics(), 1, "a second shutdown emits nothing")
}

func TestShutdownWithoutStart(t *testing.T) {
	conn := newConnector(connectortest.NewNopSettings(metadata.Type), testConfig(), consumertest.NewNop(), newHarnessClock())
	require.NoError(t, conn.Shutdown(context.Background()))
}

// Ingestion and flushing from many goroutines: run with -race.
func TestConcurrentIngestAndFlush(t *testing.T) {
	h := newHarness(t, testConfig())
	batches := []ptrace.Traces{scenarioLatencyCache(), scenarioCorrectness(), scenarioAgents(), scenarioBadInput()}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				require.NoError(t, h.conn.ConsumeTraces(context.Background(), batches[(i+j)%len(batches)]))
				if j%5 == 0 {
					h.clock.Advance(time.Second)
					require.NoError(t, h.conn.flush(context.Background(), false))
				}
			}
		}(i)
	}
	wg.Wait()
	md := h.flush()
	m, ok := metricByName(md, sc.MetricSLIRequests)
	require.True(t, ok)
	var total int64
	for i := 0; i < m.Sum().DataPoints().Len(); i++ {
		total += m.Sum().DataPoints().At(i).IntValue()
	}
	// 160 batches, 40 of each kind: latency 4 calls, correctness 5, bad input 1 valid call.
	assert.Equal(t, int64(40*4+40*5+40*1), total)
}

func TestCardinalityOverflow(t *testing.T) {
	cfg := testConfig()
	cfg.Cardinality.MaxValuesPerDimension = 3
	h := newHarness(t, cfg)
	td := ptrace.NewTraces()
	b := newBatch(td, "app")
	g := &ids{}
	for i := 0; i < 10; i++ {
		b.call(g, callSpec{provider: "openai", model: "gpt-4o-mini", region: "us", tenant: string(rune('a' + i)), input: 10, output: 5, ttft: 0.1})
	}
	h.feed(td)
	md := h.flush()
	m, ok := metricByName(md, sc.MetricSLIRequests)
	require.True(t, ok)
	dps := m.Sum().DataPoints()
	require.Equal(t, 4, dps.Len(), "3 tenants + one overflow series")
	overflow := dps.At(3)
	v, ok := overflow.Attributes().Get(sc.AttrOtelMetricOverflow)
	require.True(t, ok)
	assert.True(t, v.Bool())
	assert.Equal(t, int64(7), overflow.IntValue(), "nothing is lost: the rest lands in the overflow series")
	o, ok := metricByName(md, sc.MetricSLISeriesOverflowed)
	require.True(t, ok)
	assert.Positive(t, o.Sum().DataPoints().Len())
}

func TestDeltaTemporalityResets(t *testing.T) {
	cfg := testConfig()
	cfg.AggregationTemporality = "delta"
	h := newHarness(t, cfg)
	h.feed(scenarioEnergy())
	first := h.flush()
	m, ok := metricByName(first, sc.MetricSLIRequests)
	require.True(t, ok)
	assert.Equal(t, pmetric.AggregationTemporalityDelta, m.Sum().AggregationTemporality())
	second := h.flush()
	_, ok = metricByName(second, sc.MetricSLIRequests)
	assert.False(t, ok, "no new calls: a delta flush has no request points")
}

// A trace buffer of 2 traces evicts the oldest incomplete agent trace and counts it.
func TestTraceBufferEvicts(t *testing.T) {
	cfg := testConfig()
	cfg.TraceBuffer.MaxTraces = 2
	h := newHarness(t, cfg)
	td := ptrace.NewTraces()
	b := newBatch(td, "agent")
	g := &ids{}
	for i := 0; i < 3; i++ {
		b.run(g, runSpec{agent: "a", plans: [][]string{{"x"}}, tools: []toolSpec{{"x", 0}}})
		// drop the invoke_agent span: the run never completes
		b.spans.RemoveIf(func(s ptrace.Span) bool {
			v, _ := s.Attributes().Get(sc.AttrGenAIOperationName)
			return v.Str() == opInvokeAgent
		})
	}
	h.feed(td)
	md := h.flush()
	m, ok := metricByName(md, sc.MetricSLITracesEvicted)
	require.True(t, ok)
	assert.Equal(t, int64(1), m.Sum().DataPoints().At(0).IntValue())
	// The rest are evicted once they are older than max_age.
	h.clock.Advance(cfg.TraceBuffer.MaxAge)
	md = h.flush()
	m, _ = metricByName(md, sc.MetricSLITracesEvicted)
	assert.Equal(t, int64(3), m.Sum().DataPoints().At(0).IntValue())
}

// Phases that arrive after their call span still get the call's dimensions.
func TestLatePhasesJoinTheirCall(t *testing.T) {
	h := newHarness(t, testConfig())
	td := ptrace.NewTraces()
	call := newBatch(td, "app")
	late := newBatch(td, "late")
	g := &ids{}
	call.call(g, callSpec{provider: "openai", model: "m", region: "us", tenant: "t", input: 10, output: 5, ttft: 0.1,
		phases: streamPhases(time.Millisecond, time.Millisecond, time.Millisecond, time.Second), phasesIn: &late})
	h.feed(td)
	md := h.flush()
	m, ok := metricByName(md, sc.MetricSLIPhaseDuration)
	require.True(t, ok)
	require.Equal(t, 4, m.Histogram().DataPoints().Len())
	tenant, _ := m.Histogram().DataPoints().At(0).Attributes().Get(sc.AttrTenantID)
	assert.Equal(t, "t", tenant.Str())
	_, rejected := metricByName(md, sc.MetricSLISpansRejected)
	assert.False(t, rejected)
}
