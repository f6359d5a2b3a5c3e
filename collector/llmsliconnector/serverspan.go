package llmsliconnector

import (
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	sc "github.com/llmotel/llmotel/collector/llmsliconnector/internal/semconv"
)

// Joining a self-hosted server's own span with llmotel's call span.
//
// vLLM (--otlp-traces-endpoint; vllm/v1/engine/output_processor.py do_tracing, attribute names in
// vllm/tracing/utils.py SpanAttributes) exports one SERVER span "llm_request" per request whose parent is
// the request's traceparent, i.e. llmotel's call span when the SDK propagates trace context. Its
// gen_ai.latency.* attributes are float seconds measured on the engine core: time_in_queue =
// scheduled - queued, time_in_model_prefill = first token - scheduled, time_in_model_decode = last token -
// first token. SGLang (--enable-trace) uses the same gen_ai.latency keys. When such a span joins a call,
// these measured durations replace the SDK's queue / prefill / decode phases (source server) and the
// estimator's error is recorded; a server span whose call never comes is recorded alone.

// reasonLateServerSpan: a server span arrived after its call's SLIs were recorded (raise
// server_spans.hold_calls to join in that order; auto_hold does it for that call's model from then on).
const reasonLateServerSpan = "late_server_span"

// A model learned to have late server spans keeps its calls held for this long after the last one, and at most
// this many models are remembered (the least recently marked is forgotten).
const (
	autoHoldFor       = time.Hour
	autoHoldMaxModels = 256
)

// serverSpan is one parsed server span.
type serverSpan struct {
	traceID         pcommon.TraceID
	sid             pcommon.SpanID
	model           string
	queue, prefill  float64
	decode, ttft    float64
	e2e             float64
	hasQueue        bool
	hasPrefill      bool
	hasDecode       bool
	hasTTFT, hasE2E bool
	prompt, output  int64
	hasPrompt       bool
	hasOutput       bool
	arrived         time.Time
}

// isServerSpan: a SERVER span carrying at least one of the measured phase durations.
func isServerSpan(span ptrace.Span) bool {
	if span.Kind() != ptrace.SpanKindServer {
		return false
	}
	return hasAny(span.Attributes(), sc.AttrGenAILatencyTimeInQueue, sc.AttrGenAILatencyTimeInModelPrefill, sc.AttrGenAILatencyTimeInModelDecode)
}

// held is what waits in serverJoin: a server span waiting for its call, or a call waiting for its server span.
type held struct {
	key     pcommon.SpanID // the call's span id
	arrived time.Time
}

// serverJoin pairs server spans with call spans, whichever arrives first. Both sides are bounded by max
// entries and expire (server spans after wait, calls after hold); expiry is checked at each flush.
type serverJoin struct {
	max       int
	wait      time.Duration
	hold      time.Duration
	autoHold  time.Duration
	late      map[string]time.Time // request model -> the last late server span of one of its calls
	servers   map[pcommon.SpanID]serverSpan
	serverQ   []held
	calls     map[pcommon.SpanID]ptrace.Traces // a copy of the held call span (one span each)
	callQ     []held
	replaying bool
}

func newServerJoin(cfg ServerSpansConfig) *serverJoin {
	return &serverJoin{
		max: cfg.MaxPending, wait: cfg.Wait, hold: cfg.HoldCalls, autoHold: cfg.AutoHold,
		late:    map[string]time.Time{},
		servers: map[pcommon.SpanID]serverSpan{}, calls: map[pcommon.SpanID]ptrace.Traces{},
	}
}

// ingestServer validates a server span and joins it with its held call, parks it, or records it alone.
func (c *llmSLI) ingestServer(span ptrace.Span, now time.Time) {
	r := reader{attrs: span.Attributes()}
	s := serverSpan{sid: span.SpanID(), arrived: now}
	s.queue, s.hasQueue = r.amount(sc.AttrGenAILatencyTimeInQueue)
	s.prefill, s.hasPrefill = r.amount(sc.AttrGenAILatencyTimeInModelPrefill)
	s.decode, s.hasDecode = r.amount(sc.AttrGenAILatencyTimeInModelDecode)
	s.ttft, s.hasTTFT = r.amount(sc.AttrGenAILatencyTimeToFirstToken)
	s.e2e, s.hasE2E = r.amount(sc.AttrGenAILatencyE2e)
	s.prompt, s.hasPrompt = r.count(sc.AttrGenAIUsagePromptTokens)
	s.output, s.hasOutput = r.count(sc.AttrGenAIUsageCompletionTokens)
	s.model = r.str(sc.AttrGenAIRequestModel)
	if s.model == "" {
		s.model = r.str(sc.AttrGenAIResponseModel)
	}
	if r.bad != "" {
		c.reject(r.bad, now, 1)
		return
	}
	s.traceID = span.TraceID()
	call := span.ParentSpanID()
	j := c.server
	if call.IsEmpty() { // no traceparent: no call can ever join it
		c.recordServerOnly(s, now)
		return
	}
	if td, ok := j.calls[call]; ok { // the call is held: record it now, joined
		delete(j.calls, call)
		j.servers[call] = s
		c.replayCall(td, now)
		return
	}
	if d, recorded := c.phases.recent[call]; recorded {
		c.reject(reasonLateServerSpan, now, 1)
		j.markLate(d.model, now)
		return
	}
	for len(j.servers) >= j.max { // full: the oldest is recorded alone
		old, ok := j.popServer()
		if !ok {
			break
		}
		c.recordServerOnly(old, now)
	}
	if _, ok := j.servers[call]; !ok {
		j.serverQ = compactQueue(j.serverQ, j.max, func(k pcommon.SpanID) bool { _, ok := j.servers[k]; return ok })
		j.serverQ = append(j.serverQ, held{key: call, arrived: now})
	}
	j.servers[call] = s
}

// holdCall keeps a copy of a call span that has no server span yet, when calls are held (hold > 0).
// Returns false when the call must be recorded now.
func (c *llmSLI) holdCall(span ptrace.Span, now time.Time) bool {
	j := c.server
	if j.replaying || (j.hold <= 0 && !j.autoHolds(span, now)) {
		return false
	}
	id := span.SpanID()
	if _, ok := j.servers[id]; ok {
		return false
	}
	for len(j.calls) >= j.max {
		td, ok := j.popCall()
		if !ok {
			break
		}
		c.replayCall(td, now)
	}
	td := ptrace.NewTraces()
	span.CopyTo(td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty())
	if _, ok := j.calls[id]; !ok {
		j.callQ = compactQueue(j.callQ, j.max, func(k pcommon.SpanID) bool { _, ok := j.calls[k]; return ok })
		j.callQ = append(j.callQ, held{key: id, arrived: now})
	}
	j.calls[id] = td
	return true
}

// markLate remembers that model's calls have server spans that come after them (bounded).
func (j *serverJoin) markLate(model string, now time.Time) {
	if j.autoHold <= 0 || j.hold > 0 {
		return
	}
	if _, ok := j.late[model]; !ok && len(j.late) >= autoHoldMaxModels {
		oldest, first := "", true
		for m, t := range j.late {
			if first || t.Before(j.late[oldest]) {
				oldest, first = m, false
			}
		}
		delete(j.late, oldest)
	}
	j.late[model] = now
}

// autoHolds: hold_calls is 0 and the call's model was marked late within the last autoHoldFor. One attribute
// read, and only once some model was marked.
func (j *serverJoin) autoHolds(span ptrace.Span, now time.Time) bool {
	if j.autoHold <= 0 || len(j.late) == 0 {
		return false
	}
	v, ok := span.Attributes().Get(sc.AttrGenAIRequestModel)
	model := ""
	if ok {
		model = v.AsString()
	}
	t, ok := j.late[model]
	return ok && now.Sub(t) < autoHoldFor
}

// holdFor is how long held calls wait: hold_calls, or auto_hold when only learned models are held.
func (j *serverJoin) holdFor() time.Duration {
	if j.hold > 0 {
		return j.hold
	}
	return j.autoHold
}

// replayCall records a held call now (with its server span, if one is parked under its id).
func (c *llmSLI) replayCall(td ptrace.Traces, now time.Time) {
	c.server.replaying = true
	c.ingestCall(td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0), now)
	c.server.replaying = false
}

// compactQueue drops entries whose key is gone once the queue is much longer than the live entries.
func compactQueue(q []held, max int, live func(pcommon.SpanID) bool) []held {
	if len(q) < 2*max+16 {
		return q
	}
	kept := q[:0]
	for _, h := range q {
		if live(h.key) {
			kept = append(kept, h)
		}
	}
	clear(q[len(kept):])
	return kept
}

func (j *serverJoin) popServer() (serverSpan, bool) {
	for len(j.serverQ) > 0 {
		h := j.serverQ[0]
		j.serverQ = j.serverQ[1:]
		if s, ok := j.servers[h.key]; ok {
			delete(j.servers, h.key)
			return s, true
		}
	}
	return serverSpan{}, false
}

func (j *serverJoin) popCall() (ptrace.Traces, bool) {
	for len(j.callQ) > 0 {
		h := j.callQ[0]
		j.callQ = j.callQ[1:]
		if td, ok := j.calls[h.key]; ok {
			delete(j.calls, h.key)
			return td, true
		}
	}
	return ptrace.Traces{}, false
}

// expireServer records held calls whose hold is over (with the SDK's phases) and server spans whose
// call did not come within wait (alone); everything when final.
func (c *llmSLI) expireServer(now time.Time, final bool) {
	j := c.server
	for len(j.callQ) > 0 && (final || now.Sub(j.callQ[0].arrived) >= j.holdFor()) {
		if td, ok := j.popCall(); ok {
			c.replayCall(td, now)
		}
	}
	for len(j.serverQ) > 0 && (final || now.Sub(j.serverQ[0].arrived) >= j.wait) {
		if s, ok := j.popServer(); ok {
			c.recordServerOnly(s, now)
		}
	}
}

// take removes the server span parked for call.
func (j *serverJoin) take(call pcommon.SpanID) (serverSpan, bool) {
	s, ok := j.servers[call]
	if ok {
		delete(j.servers, call)
	}
	return s, ok
}

// serverPhases replaces the SDK's queue / prefill / decode phases of a call by the server's measured ones
// (source server) and records the estimator's error for each phase both have:
//
//	error = (SDK duration - server duration) / TTFT
//
// TTFT is the client's measured one when the call span has it, else the sum of the SDK's phases up to the
// first token, else the server's gen_ai.latency.time_to_first_token. Retries and first_token stay the SDK's.
func (c *llmSLI) serverPhases(d *callDims, ph []phase, s serverSpan, clientTTFT float64, hasClientTTFT bool, traceID pcommon.TraceID, callID pcommon.SpanID, now time.Time) []phase {
	ttft, hasTTFT := clientTTFT, hasClientTTFT && clientTTFT > 0
	if !hasTTFT {
		var sum float64
		seenFirst := false
		for _, p := range ph {
			switch p.name {
			case sc.AttrPhaseNameRetries, sc.AttrPhaseNameQueue, sc.AttrPhaseNamePrefill:
				sum += p.duration
			case sc.AttrPhaseNameFirstToken:
				sum += p.duration
				seenFirst = true
			}
		}
		ttft, hasTTFT = sum, seenFirst && sum > 0
	}
	if !hasTTFT && s.hasTTFT && s.ttft > 0 {
		ttft, hasTTFT = s.ttft, true
	}
	measured := [...]struct {
		name  string
		value float64
		ok    bool
	}{{sc.AttrPhaseNameQueue, s.queue, s.hasQueue}, {sc.AttrPhaseNamePrefill, s.prefill, s.hasPrefill}, {sc.AttrPhaseNameDecode, s.decode, s.hasDecode}}
	out := make([]phase, 0, len(ph)+len(measured))
	for _, p := range ph {
		replaced := false
		for _, m := range measured {
			if m.ok && p.name == m.name {
				replaced = true
				if hasTTFT && p.source != sc.AttrPhaseSourceServer {
					v := c.scratch[:3]
					v[0], v[1], v[2] = d.model, d.region, p.name
					c.st.estimateError.Record(v, (p.duration-m.value)/ttft, now, traceID, callID)
				}
			}
		}
		if !replaced {
			out = append(out, p)
		}
	}
	for _, m := range measured {
		if m.ok {
			out = append(out, phase{traceID: traceID, spanID: s.sid, name: m.name, source: sc.AttrPhaseSourceServer, duration: m.value, arrived: now})
		}
	}
	return out
}

// recordServerOnly records the SLIs a server span carries by itself (phase source server): its phases,
// TTFT (from arrival at the server), request duration (e2e), time per output token and token counts.
// Only the model is known (when the server names it); region, tenant and cache state stay empty.
func (c *llmSLI) recordServerOnly(s serverSpan, now time.Time) {
	d := callDims{model: s.model}
	for _, m := range [...]struct {
		name  string
		value float64
		ok    bool
	}{{sc.AttrPhaseNameQueue, s.queue, s.hasQueue}, {sc.AttrPhaseNamePrefill, s.prefill, s.hasPrefill}, {sc.AttrPhaseNameDecode, s.decode, s.hasDecode}} {
		if m.ok {
			c.recordPhase(&d, phase{traceID: s.traceID, spanID: s.sid, name: m.name, source: sc.AttrPhaseSourceServer, duration: m.value}, now)
		}
	}
	v := c.scratch[:6]
	v[0], v[1], v[2], v[3], v[4], v[5] = s.model, "", "", "", "", sc.AttrPhaseSourceServer
	if s.hasTTFT {
		c.st.ttft.Record(v, s.ttft, now, s.traceID, s.sid)
	}
	if s.hasDecode && s.hasOutput && s.output > 1 {
		c.st.tpot.Record(v, s.decode/float64(s.output-1), now, s.traceID, s.sid)
	}
	if s.hasE2E {
		c.st.duration.Record(v[:5], s.e2e, now, s.traceID, s.sid)
	}
	v = v[:3]
	if s.hasPrompt {
		c.st.inputTokens.Add(v, float64(s.prompt), now)
	}
	if s.hasOutput {
		c.st.outputTok.Add(v, float64(s.output), now)
	}
}
