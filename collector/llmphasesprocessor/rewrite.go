package llmphasesprocessor

import (
	"math"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Names read and written; all defined in semconv/registry (collector.yaml, llmotel.yaml, gen_ai.yaml).
const (
	attrOperationName     = "gen_ai.operation.name"
	attrQueue             = "gen_ai.latency.time_in_queue"
	attrPrefill           = "gen_ai.latency.time_in_model_prefill"
	attrDecode            = "gen_ai.latency.time_in_model_decode"
	attrPhaseName         = "llmotel.phase.name"
	attrPhaseSource       = "llmotel.phase.source"
	attrPhaseConfidence   = "llmotel.phase.confidence"
	attrIntervalLow       = "llmotel.phase.interval.low"
	attrIntervalHigh      = "llmotel.phase.interval.high"
	attrEstimatedDuration = "llmotel.phase.estimated_duration"
	sourceServer          = "server"
	phaseQueue            = "queue"
	phasePrefill          = "prefill"
	phaseFirstToken       = "first_token"
	phaseDecode           = "decode"
)

// measured is what a server span says about its request, in seconds (-1: absent or unusable).
type measured struct{ queue, prefill float64 }

// callPhases are one call's phase children.
type callPhases struct {
	queue, prefill, firstToken, decode ptrace.Span
	has                                [4]bool
}

// Rewrite rewrites, in place, the queue and prefill phase spans of every llmotel call span whose server span
// is in td. It returns how many calls it rewrote. Every other span is left as it is.
func Rewrite(td ptrace.Traces) int {
	servers := map[pcommon.SpanID]measured{}
	calls := map[pcommon.SpanID]ptrace.Span{}
	forEach(td, func(s ptrace.Span) {
		switch {
		case s.Kind() == ptrace.SpanKindServer && !s.ParentSpanID().IsEmpty():
			m := measured{queue: seconds(s.Attributes(), attrQueue), prefill: seconds(s.Attributes(), attrPrefill)}
			if _, dup := servers[s.ParentSpanID()]; !dup && (m.queue >= 0 || m.prefill >= 0 || seconds(s.Attributes(), attrDecode) >= 0) {
				servers[s.ParentSpanID()] = m
			}
		case s.Kind() == ptrace.SpanKindClient:
			if _, ok := s.Attributes().Get(attrOperationName); ok {
				calls[s.SpanID()] = s
			}
		}
	})
	if len(servers) == 0 {
		return 0
	}
	phases := map[pcommon.SpanID]*callPhases{}
	forEach(td, func(s ptrace.Span) {
		name, ok := s.Attributes().Get(attrPhaseName)
		if !ok {
			return
		}
		parent := s.ParentSpanID()
		if _, joined := servers[parent]; !joined {
			return
		}
		if _, isCall := calls[parent]; !isCall {
			return
		}
		cp := phases[parent]
		if cp == nil {
			cp = &callPhases{}
			phases[parent] = cp
		}
		switch name.Str() {
		case phaseQueue:
			cp.queue, cp.has[0] = s, true
		case phasePrefill:
			cp.prefill, cp.has[1] = s, true
		case phaseFirstToken:
			cp.firstToken, cp.has[2] = s, true
		case phaseDecode:
			cp.decode, cp.has[3] = s, true
		}
	})
	n := 0
	for call, cp := range phases {
		if rewriteCall(cp, servers[call]) {
			n++
		}
	}
	return n
}

// rewriteCall places the measured queue and prefill from where the SDK's queue (or prefill) starts and lets the
// next phase (first_token, else decode) start where they end; its end, the client's observation, is kept. When
// the measured durations exceed the room up to that end (clock skew, frontend time the client saw as network),
// both are scaled down in proportion so the phases still tile the call.
func rewriteCall(cp *callPhases, m measured) bool {
	if !cp.has[0] || !cp.has[1] || m.queue < 0 || m.prefill < 0 {
		return false // both are needed to place them without guessing
	}
	if src, ok := cp.queue.Attributes().Get(attrPhaseSource); ok && src.Str() == sourceServer {
		return false // already measured
	}
	var next ptrace.Span
	switch {
	case cp.has[2]:
		next = cp.firstToken
	case cp.has[3]:
		next = cp.decode
	}
	a := cp.queue.StartTimestamp()
	b := cp.prefill.EndTimestamp()
	if next != (ptrace.Span{}) {
		b = next.EndTimestamp()
	}
	if b < a {
		return false
	}
	room := float64(b - a)
	q, p := m.queue*1e9, m.prefill*1e9
	if q+p > room && q+p > 0 {
		f := room / (q + p)
		q, p = q*f, p*f
	}
	qEnd := a + pcommon.Timestamp(math.Round(q))
	pEnd := qEnd + pcommon.Timestamp(math.Round(p))
	if pEnd > b {
		pEnd = b
	}
	measure(cp.queue, a, qEnd)
	measure(cp.prefill, qEnd, pEnd)
	if next != (ptrace.Span{}) {
		next.SetStartTimestamp(pEnd)
	}
	return true
}

// measure sets a phase span to [start, end] as a server-measured phase, keeping the SDK's duration.
func measure(s ptrace.Span, start, end pcommon.Timestamp) {
	a := s.Attributes()
	a.PutDouble(attrEstimatedDuration, float64(s.EndTimestamp()-s.StartTimestamp())/1e9)
	a.PutStr(attrPhaseSource, sourceServer)
	a.PutDouble(attrPhaseConfidence, 1.0)
	a.Remove(attrIntervalLow)
	a.Remove(attrIntervalHigh)
	s.SetStartTimestamp(start)
	s.SetEndTimestamp(end)
}

// seconds reads a finite non-negative number of seconds; -1 when absent or not one.
func seconds(attrs pcommon.Map, key string) float64 {
	v, ok := attrs.Get(key)
	if !ok {
		return -1
	}
	var f float64
	switch v.Type() {
	case pcommon.ValueTypeDouble:
		f = v.Double()
	case pcommon.ValueTypeInt:
		f = float64(v.Int())
	default:
		return -1
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return -1
	}
	return f
}

func forEach(td ptrace.Traces, fn func(ptrace.Span)) {
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				fn(spans.At(k))
			}
		}
	}
}
