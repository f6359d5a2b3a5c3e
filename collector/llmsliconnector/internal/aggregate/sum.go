package aggregate

import (
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// Sum is a monotonic counter per series.
type Sum struct {
	store[float64]
	isInt bool
}

// NewSum returns a counter; isInt exports integer data points (token and request counts).
func NewSum(desc Descriptor, lim *Limiter, isInt bool) *Sum {
	return &Sum{store: newStore[float64](desc, lim), isInt: isInt}
}

// Add adds v (>= 0) to the series of values.
func (s *Sum) Add(values []string, v float64, now time.Time) {
	e := s.get(values, now, nil)
	e.data += v
}

// AppendTo exports every series as one metric; delta temporality then drops the series.
// lastFlush is the start time of delta points.
func (s *Sum) AppendTo(ms pmetric.MetricSlice, t Temporality, lastFlush, now time.Time) {
	if s.Len() == 0 {
		return
	}
	m := s.newMetric(ms)
	sum := m.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(t.pdata())
	dps := sum.DataPoints()
	dps.EnsureCapacity(s.Len())
	for _, e := range s.sorted() {
		dp := dps.AppendEmpty()
		s.putAttributes(dp.Attributes(), e)
		start := e.start
		if t == Delta {
			start = lastFlush
		}
		dp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		dp.SetTimestamp(pcommon.NewTimestampFromTime(now))
		if s.isInt {
			dp.SetIntValue(int64(e.data))
		} else {
			dp.SetDoubleValue(e.data)
		}
	}
	if t == Delta {
		s.reset()
	}
}
