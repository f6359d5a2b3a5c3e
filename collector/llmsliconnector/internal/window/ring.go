// Package window keeps sliding-window state: a ring of time slots, distinct-member sets with expiry,
// and per-key sums over the window. Every structure is bounded; none is safe for concurrent use.
package window

import "time"

// Ring divides a sliding window into Slots equal time slots. The caller keeps per-slot state in
// its own arrays indexed by the slot index and clears a slot when Advance says it expired.
type Ring struct {
	slotDur time.Duration
	slots   int
	current int64 // absolute slot number of the newest slot
	started bool
}

// NewRing returns a ring covering window with the given number of slots (at least 1).
func NewRing(window time.Duration, slots int) Ring {
	if slots < 1 {
		slots = 1
	}
	d := window / time.Duration(slots)
	if d <= 0 {
		d = time.Second
	}
	return Ring{slotDur: d, slots: slots}
}

// Slots is the number of slots.
func (r *Ring) Slots() int { return r.slots }

// SlotDuration is the length of one slot.
func (r *Ring) SlotDuration() time.Duration { return r.slotDur }

// NewestStart is when the newest slot began: slots are aligned to multiples of the slot length since the Unix
// epoch (zero time before the first Advance).
func (r *Ring) NewestStart() time.Time { return time.Unix(0, r.current*int64(r.slotDur)) }

// Advance moves the ring to now, calling reset for every slot index that fell out of the window,
// and returns the index of the current slot. A clock that goes backwards keeps the current slot.
func (r *Ring) Advance(now time.Time, reset func(int)) int {
	abs := now.UnixNano() / int64(r.slotDur)
	if !r.started {
		r.started = true
		r.current = abs
		for i := 0; i < r.slots; i++ {
			reset(i)
		}
		return r.index(abs)
	}
	if abs <= r.current {
		return r.index(r.current)
	}
	steps := abs - r.current
	if steps > int64(r.slots) {
		steps = int64(r.slots)
	}
	for k := abs - steps + 1; k <= abs; k++ {
		reset(r.index(k))
	}
	r.current = abs
	return r.index(abs)
}

// IndexAt advances the ring to now and returns the slot of an earlier moment at, so an observation is
// counted where it happened rather than when it arrived. A moment in the future counts as now; one older
// than the window returns ok=false.
func (r *Ring) IndexAt(now, at time.Time, reset func(int)) (int, bool) {
	cur := r.Advance(now, reset)
	abs := at.UnixNano() / int64(r.slotDur)
	switch {
	case abs >= r.current:
		return cur, true
	case abs <= r.current-int64(r.slots):
		return 0, false
	}
	return r.index(abs), true
}

// Order returns slot indexes from oldest to newest.
func (r *Ring) Order() []int {
	out := make([]int, r.slots)
	for k := 0; k < r.slots; k++ {
		out[k] = r.index(r.current - int64(r.slots-1-k))
	}
	return out
}

func (r *Ring) index(abs int64) int {
	i := int(abs % int64(r.slots))
	if i < 0 {
		i += r.slots
	}
	return i
}
