package llmsliconnector // import "github.com/llmotel/llmotel/collector/llmsliconnector"

import (
	"errors"
	"fmt"
	"time"

	"github.com/llmotel/llmotel/collector/llmsliconnector/internal/aggregate"
)

// Config is the llm_sli connector's configuration. Every field has a working default.
type Config struct {
	// FlushInterval is how often metrics are emitted downstream.
	FlushInterval time.Duration `mapstructure:"flush_interval"`
	// AggregationTemporality is "cumulative" (default; for Prometheus) or "delta".
	AggregationTemporality string `mapstructure:"aggregation_temporality"`
	// Exemplars attaches the trace and span id of the latest observation of each bucket to histograms.
	Exemplars bool `mapstructure:"exemplars"`
	// Window is the sliding window of the gauges (cache hit ratio, prefix churn, revision drift, fairness).
	Window WindowConfig `mapstructure:"window"`
	// Cardinality caps the number of series; data past a cap goes to one otel.metric.overflow series.
	Cardinality CardinalityConfig `mapstructure:"cardinality"`
	// TraceBuffer bounds the state that waits for related spans (agent runs, phase spans).
	TraceBuffer TraceBufferConfig `mapstructure:"trace_buffer"`
	// Fairness configures the per-tenant service accounting.
	Fairness FairnessConfig `mapstructure:"fairness"`
	// ServerSpans joins self-hosted servers' own spans (vLLM / SGLang llm_request) with llmotel's call spans.
	ServerSpans ServerSpansConfig `mapstructure:"server_spans"`
	// TenantAttributes are read in order as the tenant of a call span without llmotel.tenant.id (spans of
	// other instrumentations): default user.id, enduser.id; [] reads none.
	TenantAttributes []string `mapstructure:"tenant_attributes"`
}

// ServerSpansConfig bounds the join of server spans with call spans (docs: collector/README.md).
type ServerSpansConfig struct {
	// Wait is how long a server span waits for its call span; then its SLIs are recorded alone (source server).
	Wait time.Duration `mapstructure:"wait"`
	// HoldCalls is how long every call span waits for a server span before its SDK phases are used. It
	// delays every call's SLIs by up to that long; 0 (default) records calls at once, so only server spans
	// that arrive before their call are joined.
	HoldCalls time.Duration `mapstructure:"hold_calls"`
	// AutoHold applies while HoldCalls is 0: once a server span came after its call's SLIs were recorded, calls
	// of that call's model are held this long (for an hour after the last such server span), so a self-hosted
	// server's spans join in either order without delaying the SLIs of models that never send any. 0 disables.
	AutoHold time.Duration `mapstructure:"auto_hold"`
	// MaxPending bounds the server spans and the held calls (each).
	MaxPending int `mapstructure:"max_pending"`
}

// WindowConfig sets the sliding window.
type WindowConfig struct {
	Duration time.Duration `mapstructure:"duration"`
	// Slots is how many sub-intervals the window moves by; also the points of the noisy-neighbour correlation.
	Slots int `mapstructure:"slots"`
}

// CardinalityConfig caps series. 0 disables a cap.
type CardinalityConfig struct {
	MaxValuesPerDimension int `mapstructure:"max_values_per_dimension"`
	MaxSeriesPerMetric    int `mapstructure:"max_series_per_metric"`
	MaxSeries             int `mapstructure:"max_series"`
}

// TraceBufferConfig bounds the agent-run buffer and the pending phase spans.
type TraceBufferConfig struct {
	MaxTraces int `mapstructure:"max_traces"`
	MaxBytes  int `mapstructure:"max_bytes"`
	// Wait is how long after an invoke_agent span arrives its late children are still accepted.
	Wait time.Duration `mapstructure:"wait"`
	// MaxAge evicts traces (and phase spans) whose parent never arrives.
	MaxAge time.Duration `mapstructure:"max_age"`
	// MaxPendingPhases bounds phase spans waiting for their LLM call span.
	MaxPendingPhases int `mapstructure:"max_pending_phases"`
}

// FairnessConfig sets the Virtual Token Counter weights, the bounds, and the noisy-neighbour rule
// (0 takes the default in brackets; definitions in collector/README.md, "Fairness").
type FairnessConfig struct {
	InputTokenWeight  float64 `mapstructure:"input_token_weight"`
	OutputTokenWeight float64 `mapstructure:"output_token_weight"`
	MaxTenants        int     `mapstructure:"max_tenants"`
	// MaxCalls bounds the calls held in the window for blame and slowdown [100000].
	MaxCalls int `mapstructure:"max_calls"`
	// SlowdownFloor is tau of the per-call bounded slowdown max(1, TTFT / max(TTFT - queue, tau)) (Feitelson et
	// al., JSSPP 1997) [50ms]: about one short prefill plus the first decode step on a typical GPU server, so a
	// call whose TTFT - queue is a millisecond (mostly the queue's measurement or estimation error) cannot read
	// a slowdown of thousands. Between 0 and 10s.
	SlowdownFloor time.Duration `mapstructure:"slowdown_floor"`
	// Permutations of the blame significance test [999]; Alpha its family-wise level, Bonferroni
	// over the pool's tenants [0.05]; AbnormalSlowdown the victims' p95 slowdown that counts as
	// abnormal [1.5]; PersistEvaluations the consecutive evaluations it must hold, each a slot after the last and
	// each with a busy slot the last had not tested [3].
	Permutations       int     `mapstructure:"permutations"`
	Alpha              float64 `mapstructure:"alpha"`
	AbnormalSlowdown   float64 `mapstructure:"abnormal_slowdown"`
	PersistEvaluations int     `mapstructure:"persist_evaluations"`
}

// maxSlowdownFloor bounds fairness.slowdown_floor: 10 s is the threshold of the parallel job scheduling literature
// (Feitelson et al.) for jobs of minutes to hours; a floor that long for LLM calls would read every call's
// slowdown as TTFT / floor and hide real waiting.
const maxSlowdownFloor = 10 * time.Second

// Validate checks the configuration; each error names the key and how to fix it.
func (c *Config) Validate() error {
	var errs []error
	positive := func(key string, d time.Duration, example string) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be a positive duration, got %v; set for example %s: %s", key, d, key, example))
		}
	}
	nonNegative := func(key string, v int) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s: must be >= 0 (0 disables the cap), got %d", key, v))
		}
	}
	positive("flush_interval", c.FlushInterval, "15s")
	if _, ok := aggregate.ParseTemporality(c.AggregationTemporality); !ok {
		errs = append(errs, fmt.Errorf("aggregation_temporality: %q is not supported; use cumulative (Prometheus) or delta", c.AggregationTemporality))
	}
	positive("window.duration", c.Window.Duration, "5m")
	if c.Window.Slots < 1 || c.Window.Slots > 1000 {
		errs = append(errs, fmt.Errorf("window.slots: must be between 1 and 1000, got %d; 10 is a good default", c.Window.Slots))
	} else if c.Window.Duration > 0 && c.Window.Duration/time.Duration(c.Window.Slots) < time.Second {
		errs = append(errs, fmt.Errorf("window.slots: %d slots make slots shorter than 1s for window.duration %v; lower window.slots or raise window.duration", c.Window.Slots, c.Window.Duration))
	}
	nonNegative("cardinality.max_values_per_dimension", c.Cardinality.MaxValuesPerDimension)
	nonNegative("cardinality.max_series_per_metric", c.Cardinality.MaxSeriesPerMetric)
	nonNegative("cardinality.max_series", c.Cardinality.MaxSeries)
	if c.TraceBuffer.MaxTraces < 1 {
		errs = append(errs, fmt.Errorf("trace_buffer.max_traces: must be >= 1, got %d; it bounds agent runs held until complete (e.g. 10000)", c.TraceBuffer.MaxTraces))
	}
	if c.TraceBuffer.MaxBytes < 1024 {
		errs = append(errs, fmt.Errorf("trace_buffer.max_bytes: must be >= 1024, got %d; e.g. 67108864 (64 MiB)", c.TraceBuffer.MaxBytes))
	}
	if c.TraceBuffer.MaxPendingPhases < 1 {
		errs = append(errs, fmt.Errorf("trace_buffer.max_pending_phases: must be >= 1, got %d; e.g. 10000", c.TraceBuffer.MaxPendingPhases))
	}
	if c.TraceBuffer.Wait < 0 {
		errs = append(errs, fmt.Errorf("trace_buffer.wait: must be >= 0, got %v; e.g. 5s", c.TraceBuffer.Wait))
	}
	positive("trace_buffer.max_age", c.TraceBuffer.MaxAge, "5m")
	if c.TraceBuffer.MaxAge > 0 && c.TraceBuffer.MaxAge < c.TraceBuffer.Wait {
		errs = append(errs, fmt.Errorf("trace_buffer.max_age (%v) must be >= trace_buffer.wait (%v); raise max_age", c.TraceBuffer.MaxAge, c.TraceBuffer.Wait))
	}
	if c.Fairness.InputTokenWeight < 0 || c.Fairness.OutputTokenWeight < 0 || c.Fairness.InputTokenWeight+c.Fairness.OutputTokenWeight == 0 {
		errs = append(errs, fmt.Errorf("fairness.input_token_weight / fairness.output_token_weight: must be >= 0 and not both 0, got %v / %v; VTC uses 1 / 2",
			c.Fairness.InputTokenWeight, c.Fairness.OutputTokenWeight))
	}
	nonNegative("fairness.max_tenants", c.Fairness.MaxTenants)
	if c.ServerSpans.Wait < 0 || c.ServerSpans.HoldCalls < 0 || c.ServerSpans.AutoHold < 0 {
		errs = append(errs, fmt.Errorf("server_spans.wait / hold_calls / auto_hold: must be >= 0, got %v / %v / %v; e.g. 10s / 0s / 10s", c.ServerSpans.Wait, c.ServerSpans.HoldCalls, c.ServerSpans.AutoHold))
	}
	if c.ServerSpans.MaxPending < 1 {
		errs = append(errs, fmt.Errorf("server_spans.max_pending: must be >= 1, got %d; e.g. 10000", c.ServerSpans.MaxPending))
	}
	nonNegative("fairness.max_calls", c.Fairness.MaxCalls)
	nonNegative("fairness.permutations", c.Fairness.Permutations)
	nonNegative("fairness.persist_evaluations", c.Fairness.PersistEvaluations)
	if c.Fairness.Alpha < 0 || c.Fairness.Alpha >= 1 {
		errs = append(errs, fmt.Errorf("fairness.alpha: must be in [0, 1) (0 takes 0.05), got %v", c.Fairness.Alpha))
	}
	if c.Fairness.SlowdownFloor < 0 || c.Fairness.SlowdownFloor > maxSlowdownFloor {
		errs = append(errs, fmt.Errorf("fairness.slowdown_floor: must be between 0 and %v (0 takes 50ms, about one short prefill and first decode step), got %v; e.g. 50ms",
			maxSlowdownFloor, c.Fairness.SlowdownFloor))
	}
	if c.Fairness.AbnormalSlowdown != 0 && c.Fairness.AbnormalSlowdown < 1 {
		errs = append(errs, fmt.Errorf("fairness.abnormal_slowdown: must be >= 1 (a slowdown of 1 is no wait; 0 takes 1.5), got %v", c.Fairness.AbnormalSlowdown))
	}
	return errors.Join(errs...)
}
