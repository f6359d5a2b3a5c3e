package llmsliconnector

import (
	"math"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// Why a span was rejected (values of llmotel.sli.reason).
const (
	reasonMissingAttribute = "missing_attribute"
	reasonWrongType        = "wrong_type"
	reasonInvalidValue     = "invalid_value"
	reasonBadTimestamps    = "bad_timestamps"
	reasonOrphanPhase      = "orphan_phase"
)

// reader reads typed attributes and remembers the first problem, so a span is judged once.
// Absent attributes are not a problem unless the caller says so with require.
type reader struct {
	attrs pcommon.Map
	bad   string
}

func (r *reader) fail(reason string) {
	if r.bad == "" {
		r.bad = reason
	}
}

func (r *reader) require(key string) {
	if _, ok := r.attrs.Get(key); !ok {
		r.fail(reasonMissingAttribute)
	}
}

func (r *reader) str(key string) string {
	v, ok := r.attrs.Get(key)
	return r.strOf(v, ok)
}

// strOf, countOf, amountOf and booleanOf judge a value already looked up (ok: it is present).
func (r *reader) strOf(v pcommon.Value, ok bool) string {
	if !ok {
		return ""
	}
	if v.Type() != pcommon.ValueTypeStr {
		r.fail(reasonWrongType)
		return ""
	}
	return v.Str()
}

// count reads a non-negative integer.
func (r *reader) count(key string) (int64, bool) {
	v, ok := r.attrs.Get(key)
	return r.countOf(v, ok)
}

func (r *reader) countOf(v pcommon.Value, ok bool) (int64, bool) {
	if !ok {
		return 0, false
	}
	if v.Type() != pcommon.ValueTypeInt {
		r.fail(reasonWrongType)
		return 0, false
	}
	n := v.Int()
	if n < 0 {
		r.fail(reasonInvalidValue)
		return 0, false
	}
	return n, true
}

// amount reads a finite non-negative number (int or double).
func (r *reader) amount(key string) (float64, bool) {
	v, ok := r.attrs.Get(key)
	return r.amountOf(v, ok)
}

func (r *reader) amountOf(v pcommon.Value, ok bool) (float64, bool) {
	if !ok {
		return 0, false
	}
	var f float64
	switch v.Type() {
	case pcommon.ValueTypeDouble:
		f = v.Double()
	case pcommon.ValueTypeInt:
		f = float64(v.Int())
	default:
		r.fail(reasonWrongType)
		return 0, false
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		r.fail(reasonInvalidValue)
		return 0, false
	}
	return f, true
}

func (r *reader) boolean(key string) (value, present bool) {
	v, ok := r.attrs.Get(key)
	return r.booleanOf(v, ok)
}

func (r *reader) booleanOf(v pcommon.Value, ok bool) (value, present bool) {
	if !ok {
		return false, false
	}
	if v.Type() != pcommon.ValueTypeBool {
		r.fail(reasonWrongType)
		return false, false
	}
	return v.Bool(), true
}

// strs reads a string array; a non-string element makes the span wrongly typed.
func (r *reader) strs(key string) ([]string, bool) {
	v, ok := r.attrs.Get(key)
	if !ok {
		return nil, false
	}
	if v.Type() != pcommon.ValueTypeSlice {
		r.fail(reasonWrongType)
		return nil, false
	}
	s := v.Slice()
	out := make([]string, 0, s.Len())
	for i := 0; i < s.Len(); i++ {
		e := s.At(i)
		if e.Type() != pcommon.ValueTypeStr {
			r.fail(reasonWrongType)
			return nil, false
		}
		out = append(out, e.Str())
	}
	return out, true
}

// containsStrOf reports whether a string-array attribute (ok: present) holds one of the wanted values (no allocation).
func containsStrOf(v pcommon.Value, ok bool, wanted ...string) bool {
	if !ok || v.Type() != pcommon.ValueTypeSlice {
		return false
	}
	s := v.Slice()
	for i := 0; i < s.Len(); i++ {
		if e := s.At(i); e.Type() == pcommon.ValueTypeStr {
			for _, w := range wanted {
				if e.Str() == w {
					return true
				}
			}
		}
	}
	return false
}
