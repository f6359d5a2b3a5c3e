package aggregate

import (
	"math"
	"sort"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// exemplar is the latest observation that fell in one bucket.
type exemplar struct {
	value   float64
	at      time.Time
	traceID pcommon.TraceID
	spanID  pcommon.SpanID
	set     bool
}

type histData struct {
	counts    []uint64 // len(bounds)+1
	sum       float64
	count     uint64
	min, max  float64
	exemplars []exemplar // one per bucket: bounded by the bucket count
}

// Histogram is an explicit-bucket histogram per series, with one exemplar per bucket.
type Histogram struct {
	store[histData]
	bounds    []float64
	exemplars bool
}

// NewHistogram returns a histogram with the given (increasing) bucket bounds.
func NewHistogram(desc Descriptor, lim *Limiter, bounds []float64, exemplars bool) *Histogram {
	return &Histogram{store: newStore[histData](desc, lim), bounds: bounds, exemplars: exemplars}
}

// Record adds one observation. traceID/spanID become the bucket's exemplar when enabled.
func (h *Histogram) Record(values []string, v float64, now time.Time, traceID pcommon.TraceID, spanID pcommon.SpanID) {
	e := h.get(values, now, h.init)
	d := &e.data
	i := sort.SearchFloat64s(h.bounds, v) // first bound >= v: buckets are (prev, bound]
	d.counts[i]++
	d.sum += v
	if d.count == 0 || v < d.min {
		d.min = v
	}
	if d.count == 0 || v > d.max {
		d.max = v
	}
	d.count++
	if h.exemplars {
		d.exemplars[i] = exemplar{value: v, at: now, traceID: traceID, spanID: spanID, set: true}
	}
}

func (h *Histogram) init(d *histData) {
	d.counts = make([]uint64, len(h.bounds)+1)
	if h.exemplars {
		d.exemplars = make([]exemplar, len(h.bounds)+1)
	}
	d.min, d.max = math.Inf(1), math.Inf(-1)
}

// AppendTo exports every series as one metric; delta temporality then drops the series.
func (h *Histogram) AppendTo(ms pmetric.MetricSlice, t Temporality, lastFlush, now time.Time) {
	if h.Len() == 0 {
		return
	}
	m := h.newMetric(ms)
	hist := m.SetEmptyHistogram()
	hist.SetAggregationTemporality(t.pdata())
	dps := hist.DataPoints()
	dps.EnsureCapacity(h.Len())
	for _, e := range h.sorted() {
		dp := dps.AppendEmpty()
		h.putAttributes(dp.Attributes(), e)
		start := e.start
		if t == Delta {
			start = lastFlush
		}
		dp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		dp.SetTimestamp(pcommon.NewTimestampFromTime(now))
		d := &e.data
		dp.SetCount(d.count)
		dp.SetSum(d.sum)
		if d.count > 0 {
			dp.SetMin(d.min)
			dp.SetMax(d.max)
		}
		dp.ExplicitBounds().FromRaw(h.bounds)
		dp.BucketCounts().FromRaw(d.counts)
		for _, ex := range d.exemplars {
			if !ex.set {
				continue
			}
			pe := dp.Exemplars().AppendEmpty()
			pe.SetDoubleValue(ex.value)
			pe.SetTimestamp(pcommon.NewTimestampFromTime(ex.at))
			pe.SetTraceID(ex.traceID)
			pe.SetSpanID(ex.spanID)
		}
	}
	if t == Delta {
		h.reset()
	}
}
