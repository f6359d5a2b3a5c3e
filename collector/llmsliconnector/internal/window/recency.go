package window

import (
	"sort"
	"time"
)

// Recency tracks, per key, which members were seen within the window (for example the revisions
// a (model, region) served, or the prompt prefixes a tenant sent). Bounded in keys and members per key:
// past a bound, new keys or members are dropped and counted in Dropped.
type Recency struct {
	window     time.Duration
	maxKeys    int
	maxMembers int
	keys       map[string]*recencyKey
	Dropped    int64
}

type recencyKey struct {
	values  []string // the key's dimension values
	members map[string]time.Time
}

// NewRecency returns a tracker; zero bounds mean unlimited.
func NewRecency(window time.Duration, maxKeys, maxMembers int) *Recency {
	return &Recency{window: window, maxKeys: maxKeys, maxMembers: maxMembers, keys: map[string]*recencyKey{}}
}

// Observe records member under key (the joined values, copied only when new; values are kept for output).
func (r *Recency) Observe(key []byte, values []string, member string, now time.Time) {
	k, ok := r.keys[string(key)]
	if !ok {
		if r.maxKeys > 0 && len(r.keys) >= r.maxKeys {
			r.Dropped++
			return
		}
		k = &recencyKey{values: append([]string(nil), values...), members: map[string]time.Time{}}
		r.keys[string(key)] = k
	}
	if _, seen := k.members[member]; !seen && r.maxMembers > 0 && len(k.members) >= r.maxMembers {
		r.Dropped++
		return
	}
	k.members[member] = now
}

// Distinct is one key's members seen within the window.
type Distinct struct {
	Values  []string
	Members []string // sorted
}

// Snapshot expires members older than the window and returns the keys that still have members, in key order.
func (r *Recency) Snapshot(now time.Time) []Distinct {
	cutoff := now.Add(-r.window)
	keys := make([]string, 0, len(r.keys))
	for key, k := range r.keys {
		for m, at := range k.members {
			if at.Before(cutoff) {
				delete(k.members, m)
			}
		}
		if len(k.members) == 0 {
			delete(r.keys, key)
			continue
		}
		keys = append(keys, key)
	}
	sort.Strings(keys)
	out := make([]Distinct, 0, len(keys))
	for _, key := range keys {
		k := r.keys[key]
		members := make([]string, 0, len(k.members))
		for m := range k.members {
			members = append(members, m)
		}
		sort.Strings(members)
		out = append(out, Distinct{Values: k.values, Members: members})
	}
	return out
}
