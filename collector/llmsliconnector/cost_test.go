package llmsliconnector

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"

	sc "github.com/llmotel/llmotel/collector/llmsliconnector/internal/semconv"
)

// TestCostSumsPerTenantModelRegion checks llmotel.sli.cost against the sums computed by hand in
// testdata/golden/cost.md from the prices of the calls in scenarioCost.
func TestCostSumsPerTenantModelRegion(t *testing.T) {
	h := newHarness(t, testConfig())
	h.feed(readTraces(t, "cost"))
	md := h.flush()

	m, ok := metricByName(md, sc.MetricSLICost)
	require.True(t, ok, "no %s in the flush", sc.MetricSLICost)
	assert.Equal(t, sc.CounterSLICost.Unit, m.Unit())
	assert.True(t, m.Sum().IsMonotonic())
	want := map[[3]string]float64{ // (model, region, tenant) -> USD, from testdata/golden/cost.md
		{"gpt-4o-mini", "FR", "acme"}:        0.000795, // 0.00027 + 0.000525
		{"claude-sonnet-4", "eu", "acme"}:    0.015,
		{"gpt-4o-mini", "us-east-1", "beta"}: 0.00027, // the negative-priced call was rejected
	}
	got := map[[3]string]float64{}
	dps := m.Sum().DataPoints()
	for i := 0; i < dps.Len(); i++ {
		dp := dps.At(i)
		key := [3]string{attrStr(dp.Attributes(), sc.AttrGenAIRequestModel), attrStr(dp.Attributes(), sc.AttrServerRegion), attrStr(dp.Attributes(), sc.AttrTenantID)}
		got[key] = dp.DoubleValue()
	}
	require.Len(t, got, len(want), "one series per priced (model, region, tenant); the unpriced llama call adds none: %v", got)
	total := 0.0
	for key, usd := range want {
		assert.InDelta(t, usd, got[key], 1e-12, "%v", key)
		total += got[key]
	}
	assert.InDelta(t, 0.016065, total, 1e-12)

	rejected, ok := metricByName(md, sc.MetricSLISpansRejected)
	require.True(t, ok)
	require.Equal(t, 1, rejected.Sum().DataPoints().Len())
	assert.Equal(t, int64(1), rejected.Sum().DataPoints().At(0).IntValue())
	assert.Equal(t, reasonInvalidValue, attrStr(rejected.Sum().DataPoints().At(0).Attributes(), sc.AttrSLIReason))
}

func attrStr(attrs pcommon.Map, key string) string {
	v, _ := attrs.Get(key)
	return v.Str()
}
