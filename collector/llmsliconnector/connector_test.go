package llmsliconnector

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/pdatatest/pmetrictest"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/connector/connectortest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/llmotel/llmotel/collector/llmsliconnector/internal/clock"
	"github.com/llmotel/llmotel/collector/llmsliconnector/internal/metadata"
	sc "github.com/llmotel/llmotel/collector/llmsliconnector/internal/semconv"
)

var update = flag.Bool("update", false, "rewrite testdata/traces and testdata/golden")

// batchGap is how far the fake clock moves between recorded batches: one window slot.
const batchGap = 30 * time.Second

func testConfig() *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.TraceBuffer.Wait = 2 * time.Second
	return cfg
}

type harness struct {
	t     *testing.T
	clock *clock.Fake
	sink  *consumertest.MetricsSink
	conn  *llmSLI
}

func newHarness(t *testing.T, cfg *Config) *harness {
	t.Helper()
	sink := &consumertest.MetricsSink{}
	clk := clock.NewFake(fixtureEpoch)
	conn := newConnector(connectortest.NewNopSettings(metadata.Type), cfg, sink, clk)
	require.NoError(t, conn.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, conn.Shutdown(context.Background())) })
	return &harness{t: t, clock: clk, sink: sink, conn: conn}
}

// feed sends each ResourceSpans as its own batch, batchGap apart.
func (h *harness) feed(td ptrace.Traces) {
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		if i > 0 {
			h.clock.Advance(batchGap)
		}
		one := ptrace.NewTraces()
		rss.At(i).CopyTo(one.ResourceSpans().AppendEmpty())
		require.NoError(h.t, h.conn.ConsumeTraces(context.Background(), one))
	}
}

// flush moves past the agent-run wait and emits one flush synchronously.
func (h *harness) flush() pmetric.Metrics {
	h.clock.Advance(h.conn.cfg.TraceBuffer.Wait)
	return h.conn.collect(false)
}

func readTraces(t *testing.T, name string) ptrace.Traces {
	t.Helper()
	path := filepath.Join("testdata", "traces", name+".json")
	if *update {
		b, err := (&ptrace.JSONMarshaler{}).MarshalTraces(scenarios[name]())
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, indent(t, b), 0o600))
	}
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	td, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces(raw)
	require.NoError(t, err)
	return td
}

func indent(t *testing.T, b []byte) []byte {
	var out bytes.Buffer
	require.NoError(t, json.Indent(&out, b, "", " "))
	out.WriteByte('\n')
	return out.Bytes()
}

func compareGolden(t *testing.T, name string, got pmetric.Metrics) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name+".json")
	if *update {
		b, err := (&pmetric.JSONMarshaler{}).MarshalMetrics(withoutFairness(got))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, indent(t, b), 0o600))
	}
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	want, err := (&pmetric.JSONUnmarshaler{}).UnmarshalMetrics(raw)
	require.NoError(t, err)
	require.NoError(t, pmetrictest.CompareMetrics(want, withoutFairness(got)))
}

// TestGolden feeds each recorded batch file and compares the SLIs with the golden file.
func TestGolden(t *testing.T) {
	names := make([]string, 0, len(scenarios))
	for name := range scenarios {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, testConfig())
			h.feed(readTraces(t, name))
			compareGolden(t, name, h.flush())
		})
	}
}

// TestGoldenSDKRecorded feeds spans recorded from the real llmotel SDK (testdata/record/record_sdk_batch.py:
// OpenAI and Anthropic clients against the fleet simulator, agent runs) and compares with the golden SLIs.
func TestGoldenSDKRecorded(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "traces", "sdk_recorded.pb"))
	require.NoError(t, err)
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(raw)
	require.NoError(t, err)
	h := newHarness(t, testConfig())
	h.feed(td)
	md := h.flush()
	compareGolden(t, "sdk_recorded", md)
	_, rejected := metricByName(md, sc.MetricSLISpansRejected)
	require.False(t, rejected, "the SDK's spans are exactly the shape the connector expects")
}
