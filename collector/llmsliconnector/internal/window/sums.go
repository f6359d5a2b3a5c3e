package window

import (
	"sort"
	"time"
)

// Sums keeps two running sums per key (for example cache-read and input tokens) over the window,
// so ratios reflect recent traffic rather than all time. Bounded in keys; excess keys are dropped
// and counted in Dropped.
type Sums struct {
	ring    Ring
	maxKeys int
	slots   []map[string]*[2]float64
	values  map[string][]string
	Dropped int64
}

// NewSums returns windowed sums over window split into slots.
func NewSums(window time.Duration, slots, maxKeys int) *Sums {
	s := &Sums{ring: NewRing(window, slots), maxKeys: maxKeys, values: map[string][]string{}}
	s.slots = make([]map[string]*[2]float64, s.ring.Slots())
	return s
}

func (s *Sums) reset(i int) { s.slots[i] = map[string]*[2]float64{} }

// Add adds a and b to key's sums in the current slot. key (the joined values) is copied only when new.
func (s *Sums) Add(key []byte, values []string, a, b float64, now time.Time) {
	i := s.ring.Advance(now, s.reset)
	if _, ok := s.values[string(key)]; !ok {
		if s.maxKeys > 0 && len(s.values) >= s.maxKeys {
			s.Dropped++
			return
		}
		s.values[string(key)] = append([]string(nil), values...)
	}
	acc := s.slots[i][string(key)]
	if acc == nil {
		acc = &[2]float64{}
		s.slots[i][string(key)] = acc
	}
	acc[0] += a
	acc[1] += b
}

// Total is one key's sums over the window.
type Total struct {
	Values []string
	A, B   float64
}

// Snapshot returns the window's sums per key in key order and forgets keys with no data left.
func (s *Sums) Snapshot(now time.Time) []Total {
	s.ring.Advance(now, s.reset)
	totals := map[string]*[2]float64{}
	for _, slot := range s.slots {
		for key, acc := range slot {
			t := totals[key]
			if t == nil {
				t = &[2]float64{}
				totals[key] = t
			}
			t[0] += acc[0]
			t[1] += acc[1]
		}
	}
	keys := make([]string, 0, len(totals))
	for key := range s.values {
		if _, ok := totals[key]; !ok {
			delete(s.values, key)
			continue
		}
		keys = append(keys, key)
	}
	sort.Strings(keys)
	out := make([]Total, 0, len(keys))
	for _, key := range keys {
		out = append(out, Total{Values: s.values[key], A: totals[key][0], B: totals[key][1]})
	}
	return out
}
