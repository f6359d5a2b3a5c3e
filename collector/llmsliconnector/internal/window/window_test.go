package window

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func TestRingResetsExpiredSlots(t *testing.T) {
	r := NewRing(time.Minute, 4) // 15 s slots
	var reset []int
	rec := func(i int) { reset = append(reset, i) }
	first := r.Advance(t0, rec)
	assert.Len(t, reset, 4, "first use clears every slot")
	reset = nil
	assert.Equal(t, first, r.Advance(t0.Add(5*time.Second), rec))
	assert.Empty(t, reset)
	r.Advance(t0.Add(16*time.Second), rec)
	assert.Len(t, reset, 1)
	reset = nil
	r.Advance(t0.Add(time.Hour), rec)
	assert.Len(t, reset, 4, "a long gap clears the window once, not once per missed slot")
	reset = nil
	r.Advance(t0, rec)
	assert.Empty(t, reset, "a clock going backwards keeps the current slot")
	assert.Len(t, r.Order(), 4)
}

func TestRecencyExpiresAndBounds(t *testing.T) {
	r := NewRecency(time.Minute, 1, 2)
	r.Observe([]byte("m\x00us\x00"), []string{"m", "us"}, "fp_a", t0)
	r.Observe([]byte("m\x00us\x00"), []string{"m", "us"}, "fp_b", t0.Add(30*time.Second))
	r.Observe([]byte("m\x00us\x00"), []string{"m", "us"}, "fp_c", t0.Add(30*time.Second))
	r.Observe([]byte("m\x00eu\x00"), []string{"m", "eu"}, "fp_a", t0)
	assert.Equal(t, int64(2), r.Dropped, "one member over the per-key bound, one key over the key bound")
	snap := r.Snapshot(t0.Add(45 * time.Second))
	require.Len(t, snap, 1)
	assert.Equal(t, []string{"fp_a", "fp_b"}, snap[0].Members)
	snap = r.Snapshot(t0.Add(80 * time.Second))
	require.Len(t, snap, 1)
	assert.Equal(t, []string{"fp_b"}, snap[0].Members, "fp_a left the window")
	assert.Empty(t, r.Snapshot(t0.Add(time.Hour)))
}

func TestSumsOverWindow(t *testing.T) {
	s := NewSums(time.Minute, 6, 10)
	s.Add([]byte("k"), []string{"k"}, 1, 10, t0)
	s.Add([]byte("k"), []string{"k"}, 3, 10, t0.Add(30*time.Second))
	tot := s.Snapshot(t0.Add(30 * time.Second))
	require.Len(t, tot, 1)
	assert.Equal(t, 4.0, tot[0].A)
	assert.Equal(t, 20.0, tot[0].B)
	tot = s.Snapshot(t0.Add(75 * time.Second))
	require.Len(t, tot, 1)
	assert.Equal(t, 3.0, tot[0].A, "the first slot expired")
}

func TestIndexAtPlacesLateObservations(t *testing.T) {
	r := NewRing(time.Minute, 4) // 15 s slots
	noop := func(int) {}
	now := t0.Add(50 * time.Second)
	cur, ok := r.IndexAt(now, now.Add(time.Hour), noop)
	require.True(t, ok, "a future moment counts as now")
	past, ok := r.IndexAt(now, now.Add(-20*time.Second), noop)
	require.True(t, ok)
	assert.NotEqual(t, cur, past, "20 s ago is an earlier slot")
	_, ok = r.IndexAt(now, now.Add(-2*time.Minute), noop)
	assert.False(t, ok, "older than the window")
}

func TestRingNewestStartIsUnixAligned(t *testing.T) {
	r := NewRing(70*time.Second, 10) // 7 s slots
	assert.Equal(t, 7*time.Second, r.SlotDuration())
	r.Advance(time.Unix(1796564206, 0), func(int) {})
	assert.Equal(t, time.Unix(1796564206/7*7, 0), r.NewestStart())
}
