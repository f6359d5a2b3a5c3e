// Package aggregate holds the connector's metric series: sums and explicit-bucket histograms keyed
// by string dimensions, bounded by cardinality caps that fold excess data into one overflow series.
//
// Nothing here is safe for concurrent use: the connector's single mutex guards every store.
package aggregate

// Limits bounds the number of series. Zero means unlimited.
type Limits struct {
	MaxValuesPerDimension int // distinct values one dimension (attribute name) may take, across metrics
	MaxSeriesPerMetric    int // series one metric may hold
	MaxSeries             int // series all metrics together may hold
}

// Limiter enforces Limits across every store that shares it.
type Limiter struct {
	limits Limits
	values map[string]map[string]struct{}
	total  int
}

// NewLimiter returns a limiter enforcing l.
func NewLimiter(l Limits) *Limiter {
	return &Limiter{limits: l, values: map[string]map[string]struct{}{}}
}

// admit reports whether a new series with these dimension values may be created, and if so
// records its values and counts it.
func (l *Limiter) admit(dims, values []string, seriesInMetric int) bool {
	if l.limits.MaxSeriesPerMetric > 0 && seriesInMetric >= l.limits.MaxSeriesPerMetric {
		return false
	}
	if l.limits.MaxSeries > 0 && l.total >= l.limits.MaxSeries {
		return false
	}
	if maxValues := l.limits.MaxValuesPerDimension; maxValues > 0 {
		for i, d := range dims {
			set := l.values[d]
			if _, known := set[values[i]]; !known && len(set) >= maxValues {
				return false
			}
		}
	}
	for i, d := range dims {
		set := l.values[d]
		if set == nil {
			set = map[string]struct{}{}
			l.values[d] = set
		}
		set[values[i]] = struct{}{}
	}
	l.total++
	return true
}

// release forgets n series (a delta flush dropped them); dimension values stay known.
func (l *Limiter) release(n int) {
	l.total -= n
	if l.total < 0 {
		l.total = 0
	}
}
