package llmsliconnector

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/connector"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/zap"

	"github.com/llmotel/llmotel/collector/llmsliconnector/internal/agentrun"
	"github.com/llmotel/llmotel/collector/llmsliconnector/internal/aggregate"
	"github.com/llmotel/llmotel/collector/llmsliconnector/internal/clock"
	"github.com/llmotel/llmotel/collector/llmsliconnector/internal/fairness"
	"github.com/llmotel/llmotel/collector/llmsliconnector/internal/metadata"
	"github.com/llmotel/llmotel/collector/llmsliconnector/internal/window"
)

// llmSLI is the connector. One mutex guards all aggregation state; metrics are built under it and
// handed downstream outside it, so a slow exporter never blocks span ingestion for longer than a copy.
type llmSLI struct {
	cfg      *Config
	logger   *zap.Logger
	next     consumer.Metrics
	clock    clock.Clock
	resource pcommon.Resource

	mu           sync.Mutex
	temporality  aggregate.Temporality
	lastFlush    time.Time
	st           *stores
	cacheWindow  *window.Sums
	prefixes     *window.Recency
	revisions    *window.Recency
	lastRevision map[string]string
	fair         *fairness.Tracker
	agents       *agentrun.Buffer
	phases       *phaseJoin
	server       *serverJoin
	scratch      [8]string
	keyBuf       []byte
	shutDown     bool

	done      chan struct{}
	wg        sync.WaitGroup
	startOnce sync.Once
	stopOnce  sync.Once
}

var _ connector.Traces = (*llmSLI)(nil)

func newConnector(set connector.Settings, cfg *Config, next consumer.Metrics, clk clock.Clock) *llmSLI {
	temporality, _ := aggregate.ParseTemporality(cfg.AggregationTemporality)
	lim := aggregate.NewLimiter(aggregate.Limits{
		MaxValuesPerDimension: cfg.Cardinality.MaxValuesPerDimension,
		MaxSeriesPerMetric:    cfg.Cardinality.MaxSeriesPerMetric,
		MaxSeries:             cfg.Cardinality.MaxSeries,
	})
	maxKeys := cfg.Cardinality.MaxSeriesPerMetric
	maxValues := cfg.Cardinality.MaxValuesPerDimension
	c := &llmSLI{
		cfg:          cfg,
		logger:       set.Logger,
		next:         next,
		clock:        clk,
		resource:     set.Resource,
		temporality:  temporality,
		lastFlush:    clk.Now(),
		st:           newStores(lim, cfg.Exemplars),
		cacheWindow:  window.NewSums(cfg.Window.Duration, cfg.Window.Slots, maxKeys),
		prefixes:     window.NewRecency(cfg.Window.Duration, maxKeys, maxValues),
		revisions:    window.NewRecency(cfg.Window.Duration, maxKeys, maxValues),
		lastRevision: map[string]string{},
		fair:         fairness.NewTracker(cfg.Fairness.trackerOptions(cfg.Window.Duration, cfg.Window.Slots)),
		agents: agentrun.NewBuffer(agentrun.Limits{
			MaxTraces: cfg.TraceBuffer.MaxTraces, MaxBytes: cfg.TraceBuffer.MaxBytes,
			Wait: cfg.TraceBuffer.Wait, MaxAge: cfg.TraceBuffer.MaxAge,
		}),
		phases: newPhaseJoin(cfg.TraceBuffer.MaxPendingPhases, cfg.TraceBuffer.MaxAge),
		server: newServerJoin(cfg.ServerSpans),
		done:   make(chan struct{}),
	}
	return c
}

// Capabilities: the connector reads spans and never modifies them.
func (c *llmSLI) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: false}
}

// Start launches the flush loop.
func (c *llmSLI) Start(context.Context, component.Host) error {
	c.startOnce.Do(func() {
		c.wg.Add(1)
		go c.flushLoop()
	})
	return nil
}

func (c *llmSLI) flushLoop() {
	defer c.wg.Done()
	ticker := time.NewTicker(c.cfg.FlushInterval)
	defer ticker.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-ticker.C:
			c.flush(context.Background(), false)
		}
	}
}

// Shutdown stops the flush loop and emits a final flush that scores every complete agent run.
// Idempotent: later calls do nothing.
func (c *llmSLI) Shutdown(ctx context.Context) error {
	var err error
	c.stopOnce.Do(func() {
		close(c.done)
		c.wg.Wait()
		err = c.flush(ctx, true)
		c.mu.Lock()
		c.shutDown = true
		c.mu.Unlock()
	})
	return err
}

// ConsumeTraces aggregates a batch. It never fails: bad spans are counted in llmotel.sli.spans.rejected.
func (c *llmSLI) ConsumeTraces(_ context.Context, td ptrace.Traces) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shutDown {
		return nil
	}
	c.ingest(td, c.clock.Now())
	return nil
}

// flush builds the metrics under the lock and hands them on outside it.
func (c *llmSLI) flush(ctx context.Context, final bool) error {
	md := c.collect(final)
	if md.MetricCount() == 0 {
		return nil
	}
	return c.next.ConsumeMetrics(ctx, md)
}

func (c *llmSLI) collect(final bool) pmetric.Metrics {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock.Now()
	if c.shutDown {
		return pmetric.NewMetrics()
	}
	c.expire(now, final)

	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	c.resource.CopyTo(rm.Resource())
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName(metadata.ScopeName)
	ms := sm.Metrics()
	c.st.appendAll(ms, c.temporality, c.lastFlush, now)
	c.appendGauges(ms, now)
	c.lastFlush = now
	return md
}

// expire scores agent runs whose wait is over (all complete ones when final) and counts what was lost.
func (c *llmSLI) expire(now time.Time, final bool) {
	c.expireServer(now, final) // before the phases expire: a held call takes its phases
	var runs []agentrun.Run
	if final {
		runs = c.agents.Flush()
	} else {
		runs = c.agents.Expire(now)
	}
	for _, r := range runs {
		if r.Split {
			c.recordSplit(r.Agent, splitRoot, 1, now)
			continue
		}
		c.recordRun(r, now)
	}
	if n := c.agents.TakeEvicted(); n > 0 {
		c.st.evicted.Add(nil, float64(n), now)
	}
	if n := c.agents.TakeFragments(); n > 0 {
		c.recordSplit("", splitFragment, n, now)
	}
	if n := c.phases.expire(now, final); n > 0 {
		c.reject(reasonOrphanPhase, now, float64(n))
	}
}
