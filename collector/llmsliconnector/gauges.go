package llmsliconnector

import (
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	sc "github.com/llmotel/llmotel/collector/llmsliconnector/internal/semconv"
)

// gauge appends one gauge metric and returns its data points.
func gauge(ms pmetric.MetricSlice, name, unit, desc string) pmetric.NumberDataPointSlice {
	m := ms.AppendEmpty()
	m.SetName(name)
	m.SetUnit(unit)
	m.SetDescription(desc)
	return m.SetEmptyGauge().DataPoints()
}

func point(dps pmetric.NumberDataPointSlice, now time.Time, value float64, dims []string, values []string) {
	dp := dps.AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(now))
	dp.SetDoubleValue(value)
	for i, d := range dims {
		if values[i] != "" {
			dp.Attributes().PutStr(d, values[i])
		}
	}
}

// appendGauges exports the window gauges: cache hit ratio, prefix churn, revision drift, fairness.
// Called under c.mu.
func (c *llmSLI) appendGauges(ms pmetric.MetricSlice, now time.Time) {
	if totals := c.cacheWindow.Snapshot(now); len(totals) > 0 {
		dps := gauge(ms, sc.MetricSLICacheHitRatio, "1", "Cache-read share of input tokens over the window.")
		for _, t := range totals {
			if t.B > 0 {
				point(dps, now, t.A/t.B, cacheDims, t.Values)
			}
		}
	}
	if prefixes := c.prefixes.Snapshot(now); len(prefixes) > 0 {
		dps := gauge(ms, sc.MetricSLIPrefixDistinct, "{prefix}", "Distinct prompt-prefix fingerprints over the window.")
		for _, p := range prefixes {
			point(dps, now, float64(len(p.Members)), prefixDims, p.Values)
		}
	}
	if revisions := c.revisions.Snapshot(now); len(revisions) > 0 {
		dps := gauge(ms, sc.MetricSLIRevisionDistinct, "{revision}",
			"Distinct resolved revisions per (request model, region) over the window, one point per revision seen.")
		values := make([]string, 3)
		for _, r := range revisions {
			for _, member := range r.Members {
				values[0], values[1], values[2] = r.Values[0], r.Values[1], member
				point(dps, now, float64(len(r.Members)), revisionDims, values)
			}
		}
	}
	c.appendFairness(ms, now)
}

func (c *llmSLI) appendFairness(ms pmetric.MetricSlice, now time.Time) {
	rep := c.fair.Snapshot(now)
	if len(rep.Tenants) == 0 {
		return
	}
	share := gauge(ms, sc.MetricSLITenantServiceShare, "1", "Tenant share of weighted service over the window.")
	demand := gauge(ms, sc.MetricSLITenantDemandShare, "1", "Tenant share of requests over the window.")
	var slowdown pmetric.NumberDataPointSlice
	hasSlowdown := false
	one := make([]string, 1)
	for _, t := range rep.Tenants {
		one[0] = t.Tenant
		point(share, now, t.ServiceShare, tenantDims, one)
		point(demand, now, t.DemandShare, tenantDims, one)
		if t.HasSlowdown {
			if !hasSlowdown {
				hasSlowdown = true
				slowdown = gauge(ms, sc.MetricSLITenantSlowdown, "1", "Tenant p95 TTFT over the fleet p95 TTFT in the window.")
			}
			point(slowdown, now, t.Slowdown, tenantDims, one)
		}
	}
	if rep.HasJain {
		point(gauge(ms, sc.MetricSLIFairnessJainIndex, "1", "Jain's index of per-tenant service per request over the window."), now, rep.Jain, nil, nil)
	}
	if len(rep.Explains) > 0 {
		dps := gauge(ms, sc.MetricSLINoisyNeighbor, "1", "How well each tenant's load explains the others' TTFT; the top one is the noisy neighbour.")
		for _, e := range rep.Explains {
			one[0] = e.Tenant
			point(dps, now, e.Score, tenantDims, one)
		}
	}
}
