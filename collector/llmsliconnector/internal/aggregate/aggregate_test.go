package aggregate

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func TestHistogramBucketsAreUpperInclusive(t *testing.T) {
	h := NewHistogram(Descriptor{Name: "h", Dims: []string{"d"}}, NewLimiter(Limits{}), []float64{1, 2}, true)
	for _, v := range []float64{0.5, 1, 1.5, 2, 3} {
		h.Record([]string{"x"}, v, t0, pcommon.TraceID{1}, pcommon.SpanID{byte(v * 10)})
	}
	ms := pmetric.NewMetricSlice()
	h.AppendTo(ms, Cumulative, t0, t0)
	dp := ms.At(0).Histogram().DataPoints().At(0)
	assert.Equal(t, []uint64{2, 2, 1}, dp.BucketCounts().AsRaw(), "(-inf,1], (1,2], (2,inf)")
	assert.Equal(t, uint64(5), dp.Count())
	assert.Equal(t, 0.5, dp.Min())
	assert.Equal(t, 3.0, dp.Max())
	require.Equal(t, 3, dp.Exemplars().Len(), "one exemplar per bucket: the latest")
	assert.Equal(t, 1.0, dp.Exemplars().At(0).DoubleValue())
}

func TestLimiterSharesDimensionValuesAcrossMetrics(t *testing.T) {
	lim := NewLimiter(Limits{MaxValuesPerDimension: 2})
	a := NewSum(Descriptor{Name: "a", Dims: []string{"tenant"}}, lim, true)
	b := NewSum(Descriptor{Name: "b", Dims: []string{"tenant"}}, lim, true)
	a.Add([]string{"t1"}, 1, t0)
	a.Add([]string{"t2"}, 1, t0)
	b.Add([]string{"t1"}, 1, t0) // known value: admitted
	b.Add([]string{"t3"}, 1, t0) // third value of the dimension: overflow
	assert.Equal(t, 2, b.Len())
	assert.Equal(t, int64(1), b.TakeOverflowed())
	assert.Equal(t, int64(0), b.TakeOverflowed(), "taking resets the count")
}
