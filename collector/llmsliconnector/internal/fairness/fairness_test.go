package fairness

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func TestJainIndexBounds(t *testing.T) {
	tr := NewTracker(5*time.Minute, 10, Weights{Input: 1, Output: 2}, 0)
	for i := 0; i < 4; i++ {
		tr.Observe(t0, t0, "a", 100, 50, 0.3, true)
		tr.Observe(t0, t0, "b", 100, 50, 0.3, true)
	}
	rep := tr.Snapshot(t0)
	require.True(t, rep.HasJain)
	assert.InDelta(t, 1.0, rep.Jain, 1e-9, "equal service per request is perfectly fair")

	tr = NewTracker(5*time.Minute, 10, Weights{Input: 1, Output: 2}, 0)
	tr.Observe(t0, t0, "a", 100, 0, 0, false)
	tr.Observe(t0, t0, "b", 0, 0, 0, false) // demanded, got nothing
	rep = tr.Snapshot(t0)
	assert.InDelta(t, 0.5, rep.Jain, 1e-9, "one of two tenants served: 1/n")
	assert.InDelta(t, 1.0, rep.Tenants[0].ServiceShare, 1e-9)
	assert.InDelta(t, 0.5, rep.Tenants[1].DemandShare, 1e-9)
}

func TestWindowForgetsOldSlots(t *testing.T) {
	tr := NewTracker(time.Minute, 6, Weights{Input: 1, Output: 1}, 0)
	tr.Observe(t0, t0, "old", 10, 0, 0, false)
	tr.Observe(t0.Add(2*time.Minute), t0.Add(2*time.Minute), "new", 10, 0, 0, false)
	rep := tr.Snapshot(t0.Add(2 * time.Minute))
	require.Len(t, rep.Tenants, 1)
	assert.Equal(t, "new", rep.Tenants[0].Tenant)
}

func TestSketchQuantileWithinRelativeError(t *testing.T) {
	var s sketch
	for i := 1; i <= 1000; i++ {
		s.add(float64(i) / 100) // 0.01 .. 10 s
	}
	p95 := s.quantile(0.95)
	assert.InEpsilon(t, 9.5, p95, 0.08)
	assert.Equal(t, 0.0, (&sketch{}).quantile(0.95))
	s.add(math.NaN()) // lands in bucket 0, never panics
}

func TestNoisyNeighbourNeedsVariation(t *testing.T) {
	tr := NewTracker(5*time.Minute, 10, Weights{Input: 1, Output: 2}, 0)
	for slot := 0; slot < 10; slot++ {
		at := t0.Add(time.Duration(slot) * 30 * time.Second)
		tr.Observe(at, at, "steady", 1000, 100, 1, true)
		tr.Observe(at, at, "victim", 10, 10, 1, true)
	}
	rep := tr.Snapshot(t0.Add(299 * time.Second))
	assert.False(t, rep.HasNoisy, "constant load explains no change in TTFT")

	tr = NewTracker(5*time.Minute, 10, Weights{Input: 1, Output: 2}, 0)
	for slot := 0; slot < 10; slot++ {
		at := t0.Add(time.Duration(slot) * 30 * time.Second)
		burst := slot%3 == 0
		ttft := 0.2
		if burst {
			ttft = 2
			tr.Observe(at, at, "bursty", 5000, 1000, ttft, true)
		}
		tr.Observe(at, at, "victim", 10, 10, ttft, true)
		tr.Observe(at, at, "bystander", 20, 10, ttft, true)
	}
	rep = tr.Snapshot(t0.Add(299 * time.Second))
	require.True(t, rep.HasNoisy)
	assert.Equal(t, "bursty", rep.Noisy)
	assert.Greater(t, rep.NoisyScore, 0.5)
}
