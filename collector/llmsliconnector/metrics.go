package llmsliconnector

import (
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/llmotel/llmotel/collector/llmsliconnector/internal/aggregate"
	sc "github.com/llmotel/llmotel/collector/llmsliconnector/internal/semconv"
)

// Dimension sets. Order matters: it is the series key order.
var (
	latencyDims  = []string{sc.AttrGenAIRequestModel, sc.AttrModelRevision, sc.AttrServerRegion, sc.AttrTenantID, sc.AttrCacheState, sc.AttrPhaseSource}
	phaseDims    = append(append([]string(nil), latencyDims...), sc.AttrPhaseName)
	durationDims = latencyDims[:5]
	requestDims  = []string{sc.AttrGenAIProviderName, sc.AttrGenAIRequestModel, sc.AttrServerRegion, sc.AttrTenantID, sc.AttrErrorType, sc.AttrHTTPResponseStatusCode, sc.AttrResponseTruncated}
	usageDims    = []string{sc.AttrGenAIRequestModel, sc.AttrServerRegion, sc.AttrTenantID}
	driftDims    = []string{sc.AttrGenAIRequestModel, sc.AttrServerRegion}
	tenantDims   = []string{sc.AttrTenantID}
	agentDims    = []string{sc.AttrGenAIAgentName}
	stepDims     = []string{sc.AttrGenAIAgentName, sc.AttrSLIStepKind}
	reasonDims   = []string{sc.AttrSLIReason}
	metricDims   = []string{sc.AttrSLIMetric}
	cacheDims    = []string{sc.AttrGenAIRequestModel, sc.AttrServerRegion, sc.AttrTenantID, sc.AttrPromptPrefixFingerprint}
	prefixDims   = []string{sc.AttrGenAIRequestModel, sc.AttrTenantID}
	revisionDims = []string{sc.AttrGenAIRequestModel, sc.AttrServerRegion, sc.AttrModelRevision}
)

// stores holds every cumulative/delta series the connector exports.
type stores struct {
	ttft, phase, tpot, duration                 *aggregate.Histogram
	adherence, precision, recall                *aggregate.Histogram
	requests, inputTokens, cacheRead, outputTok *aggregate.Sum
	stalls, revisionChanges, energy, carbon     *aggregate.Sum
	service, demand, planSteps                  *aggregate.Sum
	rejected, evicted, overflowed               *aggregate.Sum
	histograms                                  []*aggregate.Histogram
	sums                                        []*aggregate.Sum
}

func newStores(lim *aggregate.Limiter, exemplars bool) *stores {
	h := func(name, unit, desc string, dims []string) *aggregate.Histogram {
		return aggregate.NewHistogram(aggregate.Descriptor{Name: name, Unit: unit, Description: desc, Dims: dims}, lim, sc.MetricBuckets[name], exemplars)
	}
	s := func(name, unit, desc string, dims []string, isInt bool) *aggregate.Sum {
		return aggregate.NewSum(aggregate.Descriptor{Name: name, Unit: unit, Description: desc, Dims: dims}, lim, isInt)
	}
	// The connector's own health counters get an unlimited limiter: they must never overflow.
	own := aggregate.NewLimiter(aggregate.Limits{})
	st := &stores{
		ttft:            h(sc.MetricSLITimeToFirstToken, "s", "Time to first token of LLM calls.", latencyDims),
		phase:           h(sc.MetricSLIPhaseDuration, "s", "Duration of each phase of LLM calls.", phaseDims),
		tpot:            h(sc.MetricSLITimePerOutputToken, "s", "Decode time per output token.", latencyDims),
		duration:        h(sc.MetricSLIRequestDuration, "s", "End-to-end LLM call duration.", durationDims),
		adherence:       h(sc.MetricSLIPlanAdherence, "1", "Ordered plan adherence per agent run.", agentDims),
		precision:       h(sc.MetricSLIPlanPrecision, "1", "Tool-set precision per agent run.", agentDims),
		recall:          h(sc.MetricSLIPlanRecall, "1", "Tool-set recall per agent run.", agentDims),
		requests:        s(sc.MetricSLIRequests, "{request}", "LLM calls.", requestDims, true),
		inputTokens:     s(sc.MetricSLIInputTokens, "{token}", "Input tokens, cache reads included.", usageDims, true),
		cacheRead:       s(sc.MetricSLICacheReadTokens, "{token}", "Cache-read input tokens.", usageDims, true),
		outputTok:       s(sc.MetricSLIOutputTokens, "{token}", "Output tokens.", usageDims, true),
		stalls:          s(sc.MetricSLIStalls, "{stall}", "Inter-chunk gaps over the stall threshold.", usageDims, true),
		revisionChanges: s(sc.MetricSLIRevisionChanges, "{change}", "Resolved revision changes per (request model, region).", driftDims, true),
		energy:          s(sc.MetricSLIEnergy, "Wh", "Estimated energy.", usageDims, false),
		carbon:          s(sc.MetricSLICarbon, "gCO2e", "Estimated carbon.", usageDims, false),
		service:         s(sc.MetricSLITenantService, "{token}", "Weighted service per tenant (VTC).", tenantDims, false),
		demand:          s(sc.MetricSLITenantDemand, "{request}", "Requests submitted per tenant.", tenantDims, true),
		planSteps:       s(sc.MetricSLIPlanSteps, "{step}", "Skipped, extra, reordered steps and re-plans.", stepDims, true),
		rejected:        aggregate.NewSum(aggregate.Descriptor{Name: sc.MetricSLISpansRejected, Unit: "{span}", Description: "Spans skipped for bad or missing attributes.", Dims: reasonDims}, own, true),
		evicted:         aggregate.NewSum(aggregate.Descriptor{Name: sc.MetricSLITracesEvicted, Unit: "{trace}", Description: "Incomplete traces evicted from the buffer."}, own, true),
		overflowed:      aggregate.NewSum(aggregate.Descriptor{Name: sc.MetricSLISeriesOverflowed, Unit: "{point}", Description: "Data points folded into an overflow series.", Dims: metricDims}, own, true),
	}
	st.histograms = []*aggregate.Histogram{st.ttft, st.phase, st.tpot, st.duration, st.adherence, st.precision, st.recall}
	st.sums = []*aggregate.Sum{st.requests, st.inputTokens, st.cacheRead, st.outputTok, st.stalls, st.revisionChanges,
		st.energy, st.carbon, st.service, st.demand, st.planSteps}
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
	st.overflowed.AppendTo(ms, t, lastFlush, now)
}
