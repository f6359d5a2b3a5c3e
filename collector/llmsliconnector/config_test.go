package llmsliconnector

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
)

func TestDefaultConfigIsValid(t *testing.T) {
	require.NoError(t, confmap.Validate(createDefaultConfig()))
	assert.Equal(t, 50*time.Millisecond, createDefaultConfig().(*Config).Fairness.SlowdownFloor)
	floor := createDefaultConfig().(*Config)
	floor.Fairness.SlowdownFloor = 0 // 0 takes the tracker's default
	require.NoError(t, floor.Validate())
}

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	cfg := createDefaultConfig().(*Config)
	require.NoError(t, cm.Unmarshal(cfg))
	require.NoError(t, confmap.Validate(cfg))
	assert.Equal(t, 5*time.Second, cfg.FlushInterval)
	assert.Equal(t, "delta", cfg.AggregationTemporality)
	assert.Equal(t, 200, cfg.Cardinality.MaxSeriesPerMetric)
	assert.Equal(t, 3.0, cfg.Fairness.OutputTokenWeight)
	assert.Equal(t, 100*time.Millisecond, cfg.Fairness.SlowdownFloor)
	assert.Equal(t, 100, cfg.TraceBuffer.MaxTraces)
	assert.Equal(t, 10*time.Minute, cfg.Window.Duration)
	assert.Equal(t, 1000, cfg.Cardinality.MaxValuesPerDimension, "unset keys keep their default")
}

// Each broken config must name the offending key and say how to fix it.
func TestValidateNamesKeyAndFix(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Config)
		want   []string
	}{
		{"flush", func(c *Config) { c.FlushInterval = 0 }, []string{"flush_interval", "15s"}},
		{"temporality", func(c *Config) { c.AggregationTemporality = "sometimes" }, []string{"aggregation_temporality", "cumulative", "delta"}},
		{"window", func(c *Config) { c.Window.Duration = -time.Second }, []string{"window.duration", "5m"}},
		{"slots", func(c *Config) { c.Window.Slots = 0 }, []string{"window.slots", "10"}},
		{"tiny slots", func(c *Config) { c.Window.Duration = 5 * time.Second; c.Window.Slots = 10 }, []string{"window.slots", "lower"}},
		{"cardinality", func(c *Config) { c.Cardinality.MaxSeries = -1 }, []string{"cardinality.max_series", "0 disables"}},
		{"traces", func(c *Config) { c.TraceBuffer.MaxTraces = 0 }, []string{"trace_buffer.max_traces", "10000"}},
		{"bytes", func(c *Config) { c.TraceBuffer.MaxBytes = 10 }, []string{"trace_buffer.max_bytes", "MiB"}},
		{"age", func(c *Config) { c.TraceBuffer.MaxAge = time.Second }, []string{"trace_buffer.max_age", "raise max_age"}},
		{"weights", func(c *Config) { c.Fairness.InputTokenWeight = 0; c.Fairness.OutputTokenWeight = 0 }, []string{"fairness.input_token_weight", "1 / 2"}},
		{"negative floor", func(c *Config) { c.Fairness.SlowdownFloor = -time.Millisecond }, []string{"fairness.slowdown_floor", "-1ms", "50ms"}},
		{"huge floor", func(c *Config) { c.Fairness.SlowdownFloor = time.Minute }, []string{"fairness.slowdown_floor", "10s", "1m0s", "50ms"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := createDefaultConfig().(*Config)
			tc.mutate(cfg)
			err := cfg.Validate()
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}
