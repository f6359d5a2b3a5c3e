package llmsliconnector

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"

	sc "github.com/llmotel/llmotel/collector/llmsliconnector/internal/semconv"
)

// The memory tests prove the connector's state is bounded by its config, not by the traffic: the heap
// after N distinct tenants and prefix fingerprints is the heap after N/4 (within a tolerance), and a flood
// of agent traces that never complete keeps the trace buffer at its bound. CI runs a reduced size;
// LLMOTEL_MEMORY_FULL=1 runs the 1,000,000 keys (bench/collector_memory.py measures the real
// binary's RSS at that size).

const memoryBatch = 1000 // calls per ConsumeTraces, as an SDK batch exporter sends them

func memoryKeys() int {
	if os.Getenv("LLMOTEL_MEMORY_FULL") == "1" {
		return 1_000_000
	}
	return 100_000
}

// heapInUse is the live heap after a full collection: what the connector's state holds.
func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// keyTemplate is memoryBatch call spans whose tenant and prefix fingerprint are rewritten per batch.
func keyTemplate() (ptrace.Traces, []ptrace.Span) {
	td := ptrace.NewTraces()
	b := newBatch(td, "app")
	g := &ids{}
	for i := 0; i < memoryBatch; i++ {
		b.call(g, callSpec{provider: "openai", model: "gpt-4o-mini", revision: "fp_1", region: "us", tenant: "t",
			input: 1000, output: 100, cacheRead: 500, ttft: 0.25, fingerprint: "f"})
	}
	spans := make([]ptrace.Span, 0, memoryBatch)
	for i := 0; i < b.spans.Len(); i++ {
		spans = append(spans, b.spans.At(i))
	}
	return td, spans
}

// sendKeys feeds calls for distinct keys [from, to): tenant i sends prefix fingerprint i.
func sendKeys(t *testing.T, h *harness, td ptrace.Traces, spans []ptrace.Span, from, to int) {
	t.Helper()
	for base := from; base < to; base += len(spans) {
		for j, s := range spans {
			k := strconv.Itoa(base + j)
			s.Attributes().PutStr(sc.AttrTenantID, "tenant-"+k)
			s.Attributes().PutStr(sc.AttrPromptPrefixFingerprint, "prefix-"+k)
		}
		require.NoError(t, h.conn.ConsumeTraces(context.Background(), td))
	}
}

func seriesCount(md pmetric.Metrics, name string) (n int, overflow bool) {
	m, ok := metricByName(md, name)
	if !ok {
		return 0, false
	}
	var attrs []pmetric.NumberDataPoint
	switch m.Type() {
	case pmetric.MetricTypeSum:
		for i := 0; i < m.Sum().DataPoints().Len(); i++ {
			attrs = append(attrs, m.Sum().DataPoints().At(i))
		}
	case pmetric.MetricTypeGauge:
		for i := 0; i < m.Gauge().DataPoints().Len(); i++ {
			attrs = append(attrs, m.Gauge().DataPoints().At(i))
		}
	case pmetric.MetricTypeHistogram:
		for i := 0; i < m.Histogram().DataPoints().Len(); i++ {
			if v, ok := m.Histogram().DataPoints().At(i).Attributes().Get(sc.AttrOtelMetricOverflow); ok && v.Bool() {
				overflow = true
			}
		}
		return m.Histogram().DataPoints().Len(), overflow
	}
	for _, dp := range attrs {
		if v, ok := dp.Attributes().Get(sc.AttrOtelMetricOverflow); ok && v.Bool() {
			overflow = true
		}
	}
	return len(attrs), overflow
}

// TestMemoryBoundedUnderDistinctKeys sends N distinct tenants and N distinct prefix fingerprints with the
// default caps. State past the caps must not grow: the heap after N keys is the heap after N/4 within
// 10 % (+2 MiB of allocator slack), where unbounded state would add at least ~100 B per key.
func TestMemoryBoundedUnderDistinctKeys(t *testing.T) {
	n := memoryKeys()
	cfg := testConfig()
	h := newHarness(t, cfg)
	td, spans := keyTemplate()
	before := heapInUse()
	sendKeys(t, h, td, spans, 0, n/4)
	quarter := heapInUse()
	sendKeys(t, h, td, spans, n/4, n)
	full := heapInUse()
	t.Logf("keys=%d heap in use: start %.1f MiB, after %d keys %.1f MiB, after %d keys %.1f MiB",
		n, mib(before), n/4, mib(quarter), n, mib(full))
	growth := int64(full) - int64(quarter)
	allowed := int64(quarter)/10 + 2<<20
	assert.Lessf(t, growth, allowed, "state grew by %.1f MiB over the last %d distinct keys (%.1f B/key): not bounded",
		float64(growth)/(1<<20), n-n/4, float64(growth)/float64(n-n/4))

	md := h.flush()
	maxValues := cfg.Cardinality.MaxValuesPerDimension
	for _, name := range []string{sc.MetricSLIRequests, sc.MetricSLIInputTokens, sc.MetricSLITimeToFirstToken, sc.MetricSLIRequestDuration} {
		count, overflow := seriesCount(md, name)
		assert.LessOrEqualf(t, count, maxValues+1, "%s: at most one series per admitted tenant + the overflow series", name)
		assert.Truef(t, overflow, "%s: the keys past the cap land in the otel.metric.overflow series", name)
	}
	m, ok := metricByName(md, sc.MetricSLIRequests)
	require.True(t, ok)
	var total int64
	for i := 0; i < m.Sum().DataPoints().Len(); i++ {
		total += m.Sum().DataPoints().At(i).IntValue()
	}
	assert.Equal(t, int64(n), total, "nothing is lost: every call is counted, capped or not")
	prefixSeries, _ := seriesCount(md, sc.MetricSLIPrefixDistinct)
	assert.LessOrEqual(t, prefixSeries, cfg.Cardinality.MaxSeriesPerMetric)
	hitSeries, _ := seriesCount(md, sc.MetricSLICacheHitRatio)
	assert.LessOrEqual(t, hitSeries, cfg.Cardinality.MaxSeriesPerMetric)
	_, ok = metricByName(md, sc.MetricSLISeriesOverflowed)
	assert.True(t, ok, "the folded points are counted")
}

// TestMemoryBoundedUnderIncompleteTraceFlood floods plan and execute_tool spans of agent traces whose
// invoke_agent root never arrives: the buffer stays at max_traces and max_bytes and counts every eviction.
func TestMemoryBoundedUnderIncompleteTraceFlood(t *testing.T) {
	traces := memoryKeys() / 4
	cfg := testConfig()
	cfg.TraceBuffer.MaxTraces = 2000
	cfg.TraceBuffer.MaxBytes = 512 << 10 // the byte bound binds before the trace bound
	h := newHarness(t, cfg)
	const perBatch = 500
	td := ptrace.NewTraces()
	b := newBatch(td, "agent")
	g := &ids{}
	for i := 0; i < perBatch; i++ {
		b.run(g, runSpec{agent: "planner", plans: [][]string{{"search", "fetch", "summarise"}},
			tools: []toolSpec{{"search", 0}, {"fetch", 0}, {"summarise", 0}}})
	}
	b.spans.RemoveIf(func(s ptrace.Span) bool {
		v, _ := s.Attributes().Get(sc.AttrGenAIOperationName)
		return v.Str() == opInvokeAgent
	})
	spans := b.spans
	var evicted int64
	peakTraces, peakBytes := 0, 0
	var quarterHeap uint64
	for sent := 0; sent < traces; sent += perBatch {
		if quarterHeap == 0 && sent >= traces/4 {
			quarterHeap = heapInUse()
		}
		// New trace IDs for every batch: each one is a new incomplete trace.
		for i := 0; i < spans.Len(); i++ {
			s := spans.At(i)
			id := s.TraceID()
			id[0], id[1], id[2], id[3] = byte(sent>>24), byte(sent>>16), byte(sent>>8), byte(sent)
			s.SetTraceID(id)
		}
		require.NoError(t, h.conn.ConsumeTraces(context.Background(), td))
		h.conn.mu.Lock()
		peakTraces = max(peakTraces, h.conn.agents.Len())
		peakBytes = max(peakBytes, h.conn.agents.Bytes())
		h.conn.mu.Unlock()
		if sent%(8*perBatch) == 0 {
			md := h.conn.collect(false)
			if m, ok := metricByName(md, sc.MetricSLITracesEvicted); ok {
				evicted = m.Sum().DataPoints().At(0).IntValue()
			}
		}
	}
	fullHeap := heapInUse()
	md := h.conn.collect(false)
	m, ok := metricByName(md, sc.MetricSLITracesEvicted)
	require.True(t, ok, "evictions are counted")
	evicted = m.Sum().DataPoints().At(0).IntValue()
	t.Logf("incomplete traces=%d peak held traces=%d peak bytes=%d evicted=%d heap %.1f -> %.1f MiB",
		traces, peakTraces, peakBytes, evicted, mib(quarterHeap), mib(fullHeap))
	assert.LessOrEqual(t, peakTraces, cfg.TraceBuffer.MaxTraces)
	assert.LessOrEqual(t, peakBytes, cfg.TraceBuffer.MaxBytes)
	h.conn.mu.Lock()
	held := h.conn.agents.Len()
	h.conn.mu.Unlock()
	assert.Equal(t, int64(traces-held), evicted, "every trace pushed out is counted")
	assert.Less(t, int64(fullHeap)-int64(quarterHeap), int64(quarterHeap)/10+2<<20, "the flood does not grow the heap")
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// TestMemoryPrefixesPerTenant sends the prefixes concentrated on few tenants (each tenant 2x
// max_values_per_dimension distinct prefixes): the prefix-distinct state holds at most max_values_per_dimension
// members per (model, tenant) key. Its heap still grows with the number of such keys, up to
// max_series_per_metric keys x max_values_per_dimension members (5,000 x 1,000 by default; about 65 B a member
// in the 1M run), so this test checks the per-key bound and logs the heap; collector/README.md states the worst case.
func TestMemoryPrefixesPerTenant(t *testing.T) {
	n := memoryKeys()
	cfg := testConfig()
	h := newHarness(t, cfg)
	td, spans := keyTemplate()
	perTenant := 2 * cfg.Cardinality.MaxValuesPerDimension
	send := func(from, to int) {
		for base := from; base < to; base += len(spans) {
			for j, s := range spans {
				k := base + j
				s.Attributes().PutStr(sc.AttrTenantID, "tenant-"+strconv.Itoa(k/perTenant))
				s.Attributes().PutStr(sc.AttrPromptPrefixFingerprint, "prefix-"+strconv.Itoa(k))
			}
			require.NoError(t, h.conn.ConsumeTraces(context.Background(), td))
		}
	}
	send(0, n/2)
	half := heapInUse()
	send(n/2, n)
	full := heapInUse()
	t.Logf("prefixes=%d tenants=%d heap after %d %.1f MiB, after %d %.1f MiB", n, n/perTenant, n/2, mib(half), n, mib(full))
	md := h.flush()
	m, ok := metricByName(md, sc.MetricSLIPrefixDistinct)
	require.True(t, ok)
	for i := 0; i < m.Gauge().DataPoints().Len(); i++ {
		assert.LessOrEqual(t, m.Gauge().DataPoints().At(i).DoubleValue(), float64(cfg.Cardinality.MaxValuesPerDimension))
	}
}
