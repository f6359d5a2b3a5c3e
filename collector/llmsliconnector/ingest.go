package llmsliconnector

import (
	"strconv"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/llmotel/llmotel/collector/llmsliconnector/internal/agentrun"
	"github.com/llmotel/llmotel/collector/llmsliconnector/internal/fairness"
	sc "github.com/llmotel/llmotel/collector/llmsliconnector/internal/semconv"
)

// Values of gen_ai.operation.name the connector routes on (GenAI conventions; values, not names).
const (
	opInvokeAgent = "invoke_agent"
	opPlan        = "plan"
	opExecuteTool = "execute_tool"
)

// Finish reasons that mean the token limit cut the answer (OpenAI / Anthropic spellings).
var truncatingFinishReasons = []string{"length", "max_tokens"}

// ingest aggregates one batch. Phase spans are taken first so that a call span finds its phases
// whatever their order inside the batch; parent links last, so that they are kept for every trace
// with agent spans in the buffer whatever the order. Called under c.mu.
func (c *llmSLI) ingest(td ptrace.Traces, now time.Time) {
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				span := spans.At(k)
				if _, ok := span.Attributes().Get(sc.AttrPhaseName); ok {
					c.ingestPhase(span, now)
				} else if isServerSpan(span) {
					c.ingestServer(span, now) // serverspan.go
				}
			}
		}
	}
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			peer := sss.At(j).Scope().Name() != llmotelScope // another instrumentation's spans (peerattrs.go)
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				c.ingestSpan(spans.At(k), peer, now)
			}
		}
	}
	if c.agents.Len() > 0 {
		c.ingestLinks(rss)
	}
}

// ingestLinks hands the buffer the parent link of every span that may sit between a tool and its
// agent (phase spans are leaves), so that a tool is credited to its nearest invoke_agent ancestor.
// Only spans of traces the buffer holds are looked at; spans of one trace usually come together,
// so the last answer is reused.
func (c *llmSLI) ingestLinks(rss ptrace.ResourceSpansSlice) {
	var last pcommon.TraceID
	held := false
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				span := spans.At(k)
				parent := span.ParentSpanID()
				if parent.IsEmpty() {
					continue
				}
				if id := span.TraceID(); id != last || i+j+k == 0 {
					last, held = id, c.agents.Holds(id)
				}
				if !held {
					continue
				}
				if _, isPhase := span.Attributes().Get(sc.AttrPhaseName); !isPhase {
					c.agents.AddLink(last, span.SpanID(), parent)
				}
			}
		}
	}
}

func (c *llmSLI) reject(reason string, now time.Time, n float64) {
	c.scratch[0] = reason
	c.st.rejected.Add(c.scratch[:1], n, now)
}

// spanTimes returns the span's start and duration in seconds, or ok=false when end < start or unset.
func spanTimes(span ptrace.Span) (time.Time, float64, bool) {
	start, end := span.StartTimestamp(), span.EndTimestamp()
	if start == 0 || end < start {
		return time.Time{}, 0, false
	}
	return start.AsTime(), float64(end-start) / 1e9, true
}

// ingestSpan routes one span by gen_ai.operation.name. peer: the span is not from llmotel's scope, so it
// is a call only with an inference operation (or the markers of instrumentations that set no operation).
func (c *llmSLI) ingestSpan(span ptrace.Span, peer bool, now time.Time) {
	attrs := span.Attributes()
	opVal, ok := attrs.Get(sc.AttrGenAIOperationName)
	if !ok {
		if peer && isPeerCall(span) {
			c.ingestCall(span, now)
		}
		return // not a GenAI span (phase spans were handled in the first pass)
	}
	if opVal.Type() != pcommon.ValueTypeStr {
		c.reject(reasonWrongType, now, 1)
		return
	}
	switch op := opVal.Str(); op {
	case opInvokeAgent:
		r := reader{attrs: attrs}
		name := r.str(sc.AttrGenAIAgentName)
		if r.bad != "" {
			c.reject(r.bad, now, 1)
			return
		}
		c.addAgent(span, name, now) // agents.go: with the run's own record, to tell split runs
	case opPlan:
		c.ingestPlan(span, now)
	case opExecuteTool:
		c.ingestTool(span, now)
	default:
		if span.Kind() == ptrace.SpanKindClient && (!peer || peerInferenceOps[op]) {
			c.ingestCall(span, now)
		}
	}
}

// ingestPlan records a plan span. A plan span that announced nothing (no revision, steps or tools:
// the SDK's run.planning() block whose planner call failed) is not bad input and is skipped.
func (c *llmSLI) ingestPlan(span ptrace.Span, now time.Time) {
	attrs := span.Attributes()
	if !hasAny(attrs, sc.AttrPlanRevision, sc.AttrPlanSteps, sc.AttrPlanTools) {
		return
	}
	r := reader{attrs: attrs}
	r.require(sc.AttrPlanRevision)
	revision, _ := r.count(sc.AttrPlanRevision)
	tools, hasTools := r.strs(sc.AttrPlanTools)
	if !hasTools {
		r.require(sc.AttrPlanSteps)
		tools, _ = r.strs(sc.AttrPlanSteps)
	}
	if r.bad != "" {
		c.reject(r.bad, now, 1)
		return
	}
	c.agents.AddPlan(span.TraceID(), span.ParentSpanID(), int(revision), span.StartTimestamp().AsTime(), tools, now)
}

func (c *llmSLI) ingestTool(span ptrace.Span, now time.Time) {
	r := reader{attrs: span.Attributes()}
	r.require(sc.AttrGenAIToolName)
	name := r.str(sc.AttrGenAIToolName)
	revision := int64(agentrun.NoRevision)
	if v, ok := r.count(sc.AttrPlanRevision); ok {
		revision = v
	}
	if r.bad != "" {
		c.reject(r.bad, now, 1)
		return
	}
	c.agents.AddToolSpan(span.TraceID(), span.SpanID(), span.ParentSpanID(), name, int(revision), span.StartTimestamp().AsTime(), now) // a re-sent span counts once
}

func hasAny(attrs pcommon.Map, keys ...string) bool {
	for _, k := range keys {
		if _, ok := attrs.Get(k); ok {
			return true
		}
	}
	return false
}

// callDims are the dimensions an LLM call lends to its phase spans.
type callDims struct {
	model, revision, region, tenant, cacheState string
	outputTokens                                int64
	hasOutput                                   bool
}

// ingestCall records every per-call SLI of one LLM call span and of the phases already seen.
func (c *llmSLI) ingestCall(span ptrace.Span, now time.Time) {
	if c.holdCall(span, now) { // waits for its server span (serverspan.go)
		return
	}
	var a callAttrs // every attribute read below, in one pass (callattrs.go)
	a.fill(span)
	r := reader{attrs: span.Attributes()}
	if !a.has[aModel] && !a.has[aPeerModel] {
		r.fail(reasonMissingAttribute)
	}
	// Where another instrumentation names a value otherwise, llmotel's name is read first (peerattrs.go).
	d := callDims{
		model:    r.strOf(a.first(aModel, aPeerModel)),
		revision: r.strOf(a.get(aRevision)),
		region:   r.strOf(a.get(aRegion)),
		tenant:   r.strOf(a.get(aTenant)),
	}
	if d.revision == "" {
		d.revision = r.strOf(a.get(aResponseModel))
	}
	if d.tenant == "" {
		d.tenant = r.firstStr(c.cfg.TenantAttributes)
	}
	provider := r.strOf(a.first(aProvider, aPeerSystem, aPeerLlmProvider, aPeerLlmSystem))
	errorType := r.strOf(a.get(aErrorType))
	status, hasStatus := r.countOf(a.get(aStatus))
	truncated, hasTruncated := r.booleanOf(a.get(aTruncated))
	input, hasInput := r.countOf(a.first(aInput, aPeerPromptTokens, aPeerLlmPrompt))
	d.outputTokens, d.hasOutput = r.countOf(a.first(aOutput, aPeerCompletionTokens, aPeerLlmCompletion))
	cacheRead, _ := r.countOf(a.first(aCacheRead, aPeerLlmCacheRead))
	d.cacheState = r.strOf(a.get(aCacheState))
	ttftAttr, hasTTFTAttr := r.amountOf(a.get(aTTFT))
	if !hasTTFTAttr {
		ttftAttr, hasTTFTAttr = firstChunkTime(span)
	}
	tpotAttr, hasTPOTAttr := r.amountOf(a.get(aTPOT))
	stalls, _ := r.countOf(a.get(aStalls))
	energy, hasEnergy := r.amountOf(a.get(aEnergy))
	carbon, hasCarbon := r.amountOf(a.get(aCarbon))
	cost, hasCost := r.amountOf(a.get(aCost))
	fingerprint := r.strOf(a.get(aFingerprint))
	server := r.strOf(a.get(aServer))
	start, duration, okTimes := spanTimes(span)
	if r.bad == "" && !okTimes {
		r.fail(reasonBadTimestamps)
	}
	if r.bad == "" && hasInput && cacheRead > input {
		r.fail(reasonInvalidValue)
	}
	if r.bad != "" {
		c.reject(r.bad, now, 1)
		return
	}
	if d.cacheState == "" && hasInput {
		d.cacheState = cacheStateOf(cacheRead, input)
	}
	if errorType == "" && span.Status().Code() == ptrace.StatusCodeError {
		errorType = "_OTHER" // the semantic conventions' fallback value
	}
	if !hasTruncated {
		v, ok := a.get(aFinishReasons)
		truncated = containsStrOf(v, ok, truncatingFinishReasons...)
	}
	traceID, spanID := span.TraceID(), span.SpanID()

	// Phases seen before (or in the same batch as) their call span.
	ph := c.phases.take(spanID)
	if s, ok := c.server.take(spanID); ok { // the server's measured phases replace the SDK's (serverspan.go)
		ph = c.serverPhases(&d, ph, s, ttftAttr, hasTTFTAttr, traceID, spanID, now)
	}
	var ttftFromPhases float64
	ttftSource, firstTokenSeen, decodeSource := "", false, ""
	var decodeDur, decodeTPOT float64
	hasDecodeTPOT := false
	var wait waitPhases
	for _, p := range ph {
		c.recordPhase(&d, p, now)
		wait.add(p.name, p.source, p.duration)
		switch p.name {
		case sc.AttrPhaseNameRetries, sc.AttrPhaseNameQueue, sc.AttrPhaseNamePrefill:
			ttftFromPhases += p.duration
		case sc.AttrPhaseNameFirstToken:
			ttftFromPhases += p.duration
			firstTokenSeen, ttftSource = true, p.source
		case sc.AttrPhaseNameDecode:
			decodeDur, decodeSource = p.duration, p.source
			decodeTPOT, hasDecodeTPOT = p.tpot, p.hasTPOT
			if stalls == 0 {
				stalls = p.stalls
			}
		}
	}
	c.phases.remember(spanID, d, now)

	v := c.scratch[:]
	// Latency: model, revision, region, tenant, cache state, phase source.
	v[0], v[1], v[2], v[3], v[4] = d.model, d.revision, d.region, d.tenant, d.cacheState
	ttft, hasTTFT := ttftAttr, hasTTFTAttr
	if hasTTFT {
		v[5] = sc.AttrPhaseSourceClient
	} else if firstTokenSeen {
		ttft, hasTTFT, v[5] = ttftFromPhases, true, ttftSource
	}
	if hasTTFT {
		c.st.ttft.Record(v[:6], ttft, now, traceID, spanID)
	}
	tpot, hasTPOT := tpotAttr, hasTPOTAttr
	if !hasTPOT && hasDecodeTPOT {
		tpot, hasTPOT = decodeTPOT, true
	}
	v[5] = decodeSource
	if v[5] == "" {
		v[5] = sc.AttrPhaseSourceClient
	}
	if !hasTPOT && decodeSource != "" && d.hasOutput && d.outputTokens > 1 {
		tpot, hasTPOT = decodeDur/float64(d.outputTokens-1), true
	}
	if hasTPOT {
		c.st.tpot.Record(v[:6], tpot, now, traceID, spanID)
	}
	c.st.duration.Record(v[:5], duration, now, traceID, spanID)

	// Requests: provider, model, region, tenant, error.type, status, truncated.
	v[0], v[1], v[2], v[3], v[4] = provider, d.model, d.region, d.tenant, errorType
	v[5], v[6] = "", strconv.FormatBool(truncated)
	if hasStatus {
		v[5] = strconv.FormatInt(status, 10)
	}
	c.st.requests.Add(v[:7], 1, now)

	// Usage, stalls, energy, carbon, cost: model, region, tenant.
	v[0], v[1], v[2] = d.model, d.region, d.tenant
	if hasInput {
		c.st.inputTokens.Add(v[:3], float64(input), now)
		c.st.cacheRead.Add(v[:3], float64(cacheRead), now)
	}
	if d.hasOutput {
		c.st.outputTok.Add(v[:3], float64(d.outputTokens), now)
	}
	if stalls > 0 {
		c.st.stalls.Add(v[:3], float64(stalls), now)
	}
	if hasEnergy {
		c.st.energy.Add(v[:3], energy, now)
	}
	if hasCarbon {
		c.st.carbon.Add(v[:3], carbon, now)
	}
	if hasCost { // absent when the SDK does not know the model's price: unknown is not free
		c.st.cost.Add(v[:3], cost, now)
	}

	// Windowed cache ratio and prefix churn.
	if hasInput {
		v[3] = fingerprint
		c.cacheWindow.Add(c.key(v[:4]), v[:4], float64(cacheRead), float64(input), now)
	}
	if fingerprint != "" {
		v[1] = d.tenant
		c.prefixes.Observe(c.key(v[:2]), v[:2], fingerprint, now)
	}

	// Revision drift per (request model, region).
	if d.revision != "" {
		v[0], v[1] = d.model, d.region
		key := c.key(v[:2])
		c.revisions.Observe(key, v[:2], d.revision, now)
		if prev, seen := c.lastRevision[string(key)]; !seen || prev != d.revision {
			if seen {
				c.st.revisionChanges.Add(v[:2], 1, now)
			}
			if seen || len(c.lastRevision) < c.cfg.Cardinality.MaxSeriesPerMetric || c.cfg.Cardinality.MaxSeriesPerMetric == 0 {
				c.lastRevision[string(key)] = d.revision
			}
		}
	}

	// Fairness: every submitted request is demand; uncached input and output tokens are service (VTC).
	v[0] = d.tenant
	out := float64(d.outputTokens)
	uncached := float64(input - cacheRead)
	c.st.demand.Add(v[:1], 1, now)
	service := c.cfg.Fairness.InputTokenWeight*uncached + c.cfg.Fairness.OutputTokenWeight*out
	if service > 0 {
		c.st.service.Add(v[:1], service, now)
	}
	c.fair.Observe(now, wait.call(fairness.Call{Tenant: d.tenant, Start: start, End: start.Add(time.Duration(duration * float64(time.Second))),
		Pool:          fairness.Pool{Server: server, Model: d.model, Region: d.region},
		UncachedInput: uncached, Output: out, TTFT: ttft, HasTTFT: hasTTFT}))
}

func cacheStateOf(cacheRead, input int64) string {
	switch {
	case cacheRead <= 0 || input <= 0:
		return sc.AttrCacheStateMiss
	case float64(cacheRead) >= sc.CacheHitRatioThreshold*float64(input): // the SDK's threshold, from the registry
		return sc.AttrCacheStateHit
	default:
		return sc.AttrCacheStatePartial
	}
}

// key joins values into a map key in a reused buffer, valid until the next call: map lookups
// with string(key) do not allocate, and maps copy it only when they insert.
func (c *llmSLI) key(values []string) []byte {
	b := c.keyBuf[:0]
	for _, v := range values {
		b = append(b, v...)
		b = append(b, 0)
	}
	c.keyBuf = b
	return b
}

// recordRun records the adherence of one scored agent run.
func (c *llmSLI) recordRun(run agentrun.Run, now time.Time) {
	v := c.scratch[:2]
	v[0] = run.Agent
	c.st.adherence.Record(v[:1], run.Result.Ordered, now, run.TraceID, run.SpanID)
	c.st.precision.Record(v[:1], run.Result.Precision, now, run.TraceID, run.SpanID)
	c.st.recall.Record(v[:1], run.Result.Recall, now, run.TraceID, run.SpanID)
	for _, step := range []struct {
		kind string
		n    int
	}{{stepSkipped, run.Result.Skipped}, {stepExtra, run.Result.Extra}, {stepReordered, run.Result.Reordered}, {stepReplan, run.Result.Replans}, {stepRepeated, run.Result.Repeated}} {
		if step.n > 0 {
			v[1] = step.kind
			c.st.planSteps.Add(v, float64(step.n), now)
		}
	}
}

// Values of llmotel.sli.step.kind.
const (
	stepSkipped   = "skipped"
	stepExtra     = "extra"
	stepReordered = "reordered"
	stepReplan    = "replan"
	stepRepeated  = "repeated" // also counted in extra
)
