package aggregate

import (
	"sort"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/llmotel/llmotel/collector/llmsliconnector/internal/semconv"
)

// Descriptor names a metric and its dimensions (attribute names, in key order).
type Descriptor struct {
	Name        string
	Unit        string
	Description string
	Dims        []string
}

// entry is one series: its dimension values, when it started, and its data.
type entry[T any] struct {
	values []string
	start  time.Time
	data   T
}

// store maps dimension values to series, with an overflow series past the caps.
type store[T any] struct {
	desc       Descriptor
	lim        *Limiter
	series     map[string]*entry[T]
	overflow   *entry[T]
	keyBuf     []byte
	overflowed int64 // data points folded into the overflow series since the last Overflowed call
}

func newStore[T any](desc Descriptor, lim *Limiter) store[T] {
	return store[T]{desc: desc, lim: lim, series: map[string]*entry[T]{}}
}

// get returns the series for values, creating it (or falling back to the overflow series).
// values must have one entry per dimension; the slice is copied only when a series is created.
func (s *store[T]) get(values []string, now time.Time, init func(*T)) *entry[T] {
	key := s.keyBuf[:0]
	for _, v := range values {
		key = append(key, v...)
		key = append(key, 0)
	}
	s.keyBuf = key
	if e, ok := s.series[string(key)]; ok { // no allocation: the compiler special-cases this lookup
		return e
	}
	if !s.lim.admit(s.desc.Dims, values, len(s.series)) {
		s.overflowed++
		if s.overflow == nil {
			s.overflow = &entry[T]{start: now}
			if init != nil {
				init(&s.overflow.data)
			}
		}
		return s.overflow
	}
	e := &entry[T]{values: append([]string(nil), values...), start: now}
	if init != nil {
		init(&e.data)
	}
	s.series[string(key)] = e
	return e
}

// sorted returns the series in key order (stable output for golden files and humans).
func (s *store[T]) sorted() []*entry[T] {
	keys := make([]string, 0, len(s.series))
	for k := range s.series {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]*entry[T], 0, len(keys)+1)
	for _, k := range keys {
		out = append(out, s.series[k])
	}
	if s.overflow != nil {
		out = append(out, s.overflow)
	}
	return out
}

// reset drops every series (delta temporality, after a flush).
func (s *store[T]) reset() {
	s.lim.release(len(s.series))
	clear(s.series)
	s.overflow = nil
}

// Len is the number of series, the overflow series included.
func (s *store[T]) Len() int {
	n := len(s.series)
	if s.overflow != nil {
		n++
	}
	return n
}

// TakeOverflowed returns how many data points went to the overflow series since the last call.
func (s *store[T]) TakeOverflowed() int64 {
	n := s.overflowed
	s.overflowed = 0
	return n
}

// Name is the metric name.
func (s *store[T]) Name() string { return s.desc.Name }

func (s *store[T]) putAttributes(attrs pcommon.Map, e *entry[T]) {
	if e.values == nil {
		attrs.PutBool(semconv.AttrOtelMetricOverflow, true)
		return
	}
	attrs.EnsureCapacity(len(e.values))
	for i, d := range s.desc.Dims {
		if e.values[i] != "" { // an absent dimension is left out, not exported as ""
			attrs.PutStr(d, e.values[i])
		}
	}
}

func (s *store[T]) newMetric(ms pmetric.MetricSlice) pmetric.Metric {
	m := ms.AppendEmpty()
	m.SetName(s.desc.Name)
	m.SetUnit(s.desc.Unit)
	m.SetDescription(s.desc.Description)
	return m
}

// Temporality selects cumulative or delta output.
type Temporality int

const (
	// Cumulative series start when first seen and keep growing.
	Cumulative Temporality = iota
	// Delta series cover one flush interval and are dropped after each flush.
	Delta
)

// ParseTemporality maps a config string to a Temporality.
func ParseTemporality(s string) (Temporality, bool) {
	switch strings.ToLower(s) {
	case "", "cumulative":
		return Cumulative, true
	case "delta":
		return Delta, true
	}
	return Cumulative, false
}

func (t Temporality) pdata() pmetric.AggregationTemporality {
	if t == Delta {
		return pmetric.AggregationTemporalityDelta
	}
	return pmetric.AggregationTemporalityCumulative
}
