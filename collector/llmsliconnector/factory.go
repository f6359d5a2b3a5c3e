//go:generate ../mdatagen.sh

// Package llmsliconnector turns llmotel spans (LLM call spans, their phase children, agent runs)
// into SLI metrics: latency, cache, correctness, revision drift, plan adherence, fairness and energy.
package llmsliconnector // import "github.com/llmotel/llmotel/collector/llmsliconnector"

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/connector"
	"go.opentelemetry.io/collector/consumer"

	"github.com/llmotel/llmotel/collector/llmsliconnector/internal/clock"
	"github.com/llmotel/llmotel/collector/llmsliconnector/internal/metadata"
	sc "github.com/llmotel/llmotel/collector/llmsliconnector/internal/semconv"
)

// NewFactory returns the factory of the llm_sli connector (traces in, metrics out).
func NewFactory() connector.Factory {
	return connector.NewFactory(
		metadata.Type,
		createDefaultConfig,
		connector.WithTracesToMetrics(createTracesToMetrics, metadata.TracesToMetricsStability),
	)
}

func createDefaultConfig() component.Config {
	return &Config{
		FlushInterval:          15 * time.Second,
		AggregationTemporality: "cumulative",
		Exemplars:              true,
		Window:                 WindowConfig{Duration: 5 * time.Minute, Slots: 10},
		Cardinality:            CardinalityConfig{MaxValuesPerDimension: 1000, MaxSeriesPerMetric: 5000, MaxSeries: 50000},
		TraceBuffer: TraceBufferConfig{
			MaxTraces: 10000, MaxBytes: 64 << 20, Wait: 5 * time.Second, MaxAge: 5 * time.Minute, MaxPendingPhases: 50000,
		},
		Fairness:         FairnessConfig{InputTokenWeight: 1, OutputTokenWeight: 2, MaxTenants: 1000, SlowdownFloor: 50 * time.Millisecond},
		ServerSpans:      ServerSpansConfig{Wait: 10 * time.Second, AutoHold: 10 * time.Second, MaxPending: 10000},
		TenantAttributes: []string{sc.AttrUserID, sc.AttrEnduserID},
	}
}

func createTracesToMetrics(_ context.Context, set connector.Settings, cfg component.Config, next consumer.Metrics) (connector.Traces, error) {
	return newConnector(set, cfg.(*Config), next, clock.Real{}), nil
}
