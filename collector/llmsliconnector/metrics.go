package llmsliconnector

import (
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/llmotel/llmotel/collector/llmsliconnector/internal/aggregate"
	sc "github.com/llmotel/llmotel/collector/llmsliconnector/internal/semconv"
)

// stores holds every cumulative/delta series the connector exports.
type stores struct {
	ttft, phase, tpot, duration                 *aggregate.Histogram
	estimateError                               *aggregate.Histogram
	adherence, precision, recall                *aggregate.Histogram
	requests, inputTokens, cacheRead, outputTok *aggregate.Sum
	stalls, revisionChanges, energy, carbon     *aggregate.Sum
	cost                                        *aggregate.Sum
	service, demand, planSteps                  *aggregate.Sum
	rejected, evicted, overflowed               *aggregate.Sum
	runsSplit                                   *aggregate.Sum
	histograms                                  []*aggregate.Histogram
	sums                                        []*aggregate.Sum
}

func newStores(lim *aggregate.Limiter, exemplars bool) *stores {
	// Names, units, descriptions, dimensions (in the order ingest fills their values) and buckets all
	// come from the registry (semconv/registry), generated into internal/semconv.
	h := func(d sc.HistogramDescriptor) *aggregate.Histogram {
		return aggregate.NewHistogram(aggregate.Descriptor{Name: d.Name, Unit: d.Unit, Description: d.Description, Dims: d.Dims}, lim, d.Buckets, exemplars)
	}
	sum := func(d sc.CounterDescriptor, lim *aggregate.Limiter) *aggregate.Sum {
		return aggregate.NewSum(aggregate.Descriptor{Name: d.Name, Unit: d.Unit, Description: d.Description, Dims: d.Dims}, lim, d.IsInt)
	}
	s := func(d sc.CounterDescriptor) *aggregate.Sum { return sum(d, lim) }
	// The connector's own health counters get an unlimited limiter: they must never overflow.
	own := aggregate.NewLimiter(aggregate.Limits{})
	st := &stores{
		ttft:            h(sc.HistogramSLITimeToFirstToken),
		phase:           h(sc.HistogramSLIPhaseDuration),
		estimateError:   h(sc.HistogramSLIPhaseEstimateError),
		tpot:            h(sc.HistogramSLITimePerOutputToken),
		duration:        h(sc.HistogramSLIRequestDuration),
		adherence:       h(sc.HistogramSLIPlanAdherence),
		precision:       h(sc.HistogramSLIPlanPrecision),
		recall:          h(sc.HistogramSLIPlanRecall),
		requests:        s(sc.CounterSLIRequests),
		inputTokens:     s(sc.CounterSLIInputTokens),
		cacheRead:       s(sc.CounterSLICacheReadTokens),
		outputTok:       s(sc.CounterSLIOutputTokens),
		stalls:          s(sc.CounterSLIStalls),
		revisionChanges: s(sc.CounterSLIRevisionChanges),
		energy:          s(sc.CounterSLIEnergy),
		carbon:          s(sc.CounterSLICarbon),
		cost:            s(sc.CounterSLICost),
		service:         s(sc.CounterSLITenantService),
		demand:          s(sc.CounterSLITenantDemand),
		planSteps:       s(sc.CounterSLIPlanSteps),
		rejected:        sum(sc.CounterSLISpansRejected, own),
		evicted:         sum(sc.CounterSLITracesEvicted, own),
		runsSplit:       sum(sc.CounterSLIAgentRunsSplit, own),
		overflowed:      sum(sc.CounterSLISeriesOverflowed, own),
	}
	st.histograms = []*aggregate.Histogram{st.ttft, st.phase, st.tpot, st.duration, st.adherence, st.precision, st.recall, st.estimateError}
	st.sums = []*aggregate.Sum{st.requests, st.inputTokens, st.cacheRead, st.outputTok, st.stalls, st.revisionChanges,
		st.energy, st.carbon, st.cost, st.service, st.demand, st.planSteps}
	return st
}

// appendAll exports every store; overflow counts are collected first so they appear in this flush.
func (st *stores) appendAll(ms pmetric.MetricSlice, t aggregate.Temporality, lastFlush, now time.Time) {
	for _, h := range st.histograms {
		if n := h.TakeOverflowed(); n > 0 {
			st.overflowed.Add([]string{h.Name()}, float64(n), now)
		}
	}
	for _, s := range st.sums {
		if n := s.TakeOverflowed(); n > 0 {
			st.overflowed.Add([]string{s.Name()}, float64(n), now)
		}
	}
	for _, h := range st.histograms {
		h.AppendTo(ms, t, lastFlush, now)
	}
	for _, s := range st.sums {
		s.AppendTo(ms, t, lastFlush, now)
	}
	st.rejected.AppendTo(ms, t, lastFlush, now)
	st.evicted.AppendTo(ms, t, lastFlush, now)
	st.runsSplit.AppendTo(ms, t, lastFlush, now)
	st.overflowed.AppendTo(ms, t, lastFlush, now)
}
