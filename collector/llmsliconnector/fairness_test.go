package llmsliconnector

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"

	sc "github.com/llmotel/llmotel/collector/llmsliconnector/internal/semconv"
)

// fairnessMetrics are checked against hand-computed values (testdata/fairness.md, internal/fairness and
// TestFairnessThroughConnector), never against snapshots: the golden files leave them out.
var fairnessMetrics = map[string]bool{
	sc.MetricSLITenantService: true, sc.MetricSLITenantServiceShare: true, sc.MetricSLITenantDemandShare: true,
	sc.MetricSLIFairnessJainIndex: true, sc.MetricSLIPoolFairnessJainIndex: true, sc.MetricSLITenantServiceRatio: true,
	sc.MetricSLITenantSlowdownP50: true, sc.MetricSLITenantSlowdownP95: true, sc.MetricSLITenantBlameShare: true,
	sc.MetricSLINoisyNeighbor: true,
}

func withoutFairness(md pmetric.Metrics) pmetric.Metrics {
	out := pmetric.NewMetrics()
	md.CopyTo(out)
	rms := out.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			sms.At(j).Metrics().RemoveIf(func(m pmetric.Metric) bool { return fairnessMetrics[m.Name()] })
		}
	}
	return out
}

// TestFairnessThroughConnector feeds Example 1 of testdata/fairness.md as spans with phase spans and
// checks the gauges against the hand-computed values.
func TestFairnessThroughConnector(t *testing.T) {
	h := newHarness(t, testConfig())
	td := scenarioFairnessExample1()
	h.feed(td)
	md := h.flush()
	jain, ok := metricByName(md, sc.MetricSLIPoolFairnessJainIndex)
	require.True(t, ok)
	require.Equal(t, 1, jain.Gauge().DataPoints().Len())
	assert.InDelta(t, 0.8742203742203742, jain.Gauge().DataPoints().At(0).DoubleValue(), 1e-9)
	blame, ok := metricByName(md, sc.MetricSLITenantBlameShare)
	require.True(t, ok)
	require.Equal(t, 1, blame.Gauge().DataPoints().Len(), "only A has blame")
	assert.InDelta(t, 1.0, blame.Gauge().DataPoints().At(0).DoubleValue(), 1e-9)
	p95, ok := metricByName(md, sc.MetricSLITenantSlowdownP95)
	require.True(t, ok)
	got := map[string]float64{}
	for i := 0; i < p95.Gauge().DataPoints().Len(); i++ {
		dp := p95.Gauge().DataPoints().At(i)
		tenant, _ := dp.Attributes().Get(sc.AttrTenantID)
		src, _ := dp.Attributes().Get(sc.AttrSLIQueueSource)
		got[tenant.Str()+"/"+src.Str()] = dp.DoubleValue()
	}
	assert.Equal(t, map[string]float64{"A/measured": 1, "A/estimated": 6, "B/measured": 5}, got)
}

// scenarioFairnessExample1 is Example 1 of testdata/fairness.md as an SDK would export it: the queue
// wait is a phase span (server-measured for a1 and b1, estimated for a2), service follows it.
func scenarioFairnessExample1() ptrace.Traces {
	td := ptrace.NewTraces()
	g := &ids{next: 9000}
	b := newBatch(td, "fleet")
	s := time.Second
	spec := func(tenant string, in, out int64, ttft float64, queue time.Duration, source string, rest time.Duration) callSpec {
		return callSpec{provider: "vllm", model: "llama", region: "eu", tenant: tenant, input: in, output: out, ttft: ttft,
			phases: []phaseSpec{{sc.AttrPhaseNameQueue, source, queue}, {sc.AttrPhaseNamePrefill, sc.AttrPhaseSourceServer, rest}}}
	}
	b.call(g, spec("A", 100, 100, 0.5, 0, sc.AttrPhaseSourceServer, 5*s))    // a1: served [0, 5)
	b.call(g, spec("A", 100, 100, 6, 5*s, sc.AttrPhaseSourceEstimated, 5*s)) // a2: waits [0, 5), served [5, 10)
	b.call(g, spec("B", 60, 0, 10, 8*s, sc.AttrPhaseSourceServer, 2*s))      // b1: waits [0, 8), served [8, 10)
	return td
}

// fairness.slowdown_floor reaches the tracker (its arithmetic: "Bounded slowdown" in testdata/fairness.md).
func TestSlowdownFloorReachesTracker(t *testing.T) {
	opt := FairnessConfig{SlowdownFloor: 100 * time.Millisecond}.trackerOptions(time.Minute, 10)
	assert.Equal(t, 100*time.Millisecond, opt.SlowdownFloor)
	assert.Equal(t, 50*time.Millisecond, testConfig().Fairness.SlowdownFloor, "the default config carries 50ms")
}
