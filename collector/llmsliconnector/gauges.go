package llmsliconnector

import (
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	sc "github.com/llmotel/llmotel/collector/llmsliconnector/internal/semconv"
)

// gauge appends one gauge metric described by the registry and returns it with its data points.
func gauge(ms pmetric.MetricSlice, d sc.GaugeDescriptor) gaugePoints {
	m := ms.AppendEmpty()
	m.SetName(d.Name)
	m.SetUnit(d.Unit)
	m.SetDescription(d.Description)
	return gaugePoints{dps: m.SetEmptyGauge().DataPoints(), dims: d.Dims}
}

// gaugePoints are a gauge's data points and its dimensions (registry order), so a point's values
// can only be labelled with the dimensions of the gauge they belong to.
type gaugePoints struct {
	dps  pmetric.NumberDataPointSlice
	dims []string
}

// point appends one data point; values are in the order of g.dims, and empty ones are left off.
func point(g gaugePoints, now time.Time, value float64, values []string) {
	dp := g.dps.AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(now))
	dp.SetDoubleValue(value)
	for i, d := range g.dims {
		if values[i] != "" {
			dp.Attributes().PutStr(d, values[i])
		}
	}
}

// appendGauges exports the window gauges: cache hit ratio, prefix churn, revision drift, fairness.
// Called under c.mu.
func (c *llmSLI) appendGauges(ms pmetric.MetricSlice, now time.Time) {
	if totals := c.cacheWindow.Snapshot(now); len(totals) > 0 {
		dps := gauge(ms, sc.GaugeSLICacheHitRatio)
		for _, t := range totals {
			if t.B > 0 {
				point(dps, now, t.A/t.B, t.Values)
			}
		}
	}
	if prefixes := c.prefixes.Snapshot(now); len(prefixes) > 0 {
		dps := gauge(ms, sc.GaugeSLIPrefixDistinct)
		for _, p := range prefixes {
			point(dps, now, float64(len(p.Members)), p.Values)
		}
	}
	if revisions := c.revisions.Snapshot(now); len(revisions) > 0 {
		dps := gauge(ms, sc.GaugeSLIRevisionDistinct)
		values := make([]string, 3)
		for _, r := range revisions {
			for _, member := range r.Members {
				values[0], values[1], values[2] = r.Values[0], r.Values[1], member
				point(dps, now, float64(len(r.Members)), values)
			}
		}
	}
	c.appendFairness(ms, now)
}
