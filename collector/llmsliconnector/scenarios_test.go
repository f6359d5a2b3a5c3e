package llmsliconnector

import (
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	sc "github.com/llmotel/llmotel/collector/llmsliconnector/internal/semconv"
)

// scenarios build the recorded batches in testdata/traces (one file per SLI family).
var scenarios = map[string]func() ptrace.Traces{
	"latency_cache": scenarioLatencyCache,
	"correctness":   scenarioCorrectness,
	"drift":         scenarioDrift,
	"agents":        scenarioAgents,
	"fairness":      scenarioFairness,
	"energy":        scenarioEnergy,
	"cost":          scenarioCost,
	"bad_input":     scenarioBadInput,
}

func scenarioLatencyCache() ptrace.Traces {
	td := ptrace.NewTraces()
	g := &ids{}
	early := newBatch(td, "phases-first") // phase spans exported before their call span
	b := newBatch(td, "app")
	ms := time.Millisecond
	b.call(g, callSpec{provider: "openai", model: "gpt-4o-mini", revision: "fp_aaa", region: "us", tenant: "acme",
		input: 1200, output: 180, cacheRead: 1100, ttft: 0.42, fingerprint: "3f9a0c1d22be4e71",
		phases: streamPhases(40*ms, 260*ms, 120*ms, 1800*ms)})
	b.call(g, callSpec{provider: "openai", model: "gpt-4o-mini", revision: "fp_aaa", region: "us", tenant: "acme",
		input: 1200, output: 90, cacheRead: 0, ttft: 1.9, fingerprint: "3f9a0c1d22be4e71",
		phases: streamPhases(900*ms, 800*ms, 200*ms, 6400*ms), at: time.Second})
	b.call(g, callSpec{provider: "anthropic", model: "claude-sonnet-4", revision: "claude-sonnet-4-20250514", region: "eu", tenant: "beta",
		input: 3000, output: 400, cacheRead: 1500, fingerprint: "77aa01bb02cc03dd",
		phases: []phaseSpec{
			{sc.AttrPhaseNameRetries, sc.AttrPhaseSourceClient, 1200 * ms},
			{sc.AttrPhaseNameQueue, sc.AttrPhaseSourceEstimated, 300 * ms},
			{sc.AttrPhaseNamePrefill, sc.AttrPhaseSourceEstimated, 700 * ms},
			{sc.AttrPhaseNameFirstToken, sc.AttrPhaseSourceEstimated, 150 * ms},
			{sc.AttrPhaseNameDecode, sc.AttrPhaseSourceEstimated, 5200 * ms},
		}, at: 2 * time.Second, phasesIn: &early})
	b.call(g, callSpec{provider: "vllm", model: "llama-3.1-8b", revision: "llama-3.1-8b", region: "local", tenant: "acme",
		input: 500, output: 64, ttft: 0.08,
		phases: []phaseSpec{
			{sc.AttrPhaseNameQueue, sc.AttrPhaseSourceServer, 10 * ms},
			{sc.AttrPhaseNamePrefill, sc.AttrPhaseSourceServer, 50 * ms},
			{sc.AttrPhaseNameFirstToken, sc.AttrPhaseSourceClient, 20 * ms},
			{sc.AttrPhaseNameDecode, sc.AttrPhaseSourceServer, 640 * ms},
		}, at: 3 * time.Second})
	return td
}

func scenarioCorrectness() ptrace.Traces {
	td := ptrace.NewTraces()
	g := &ids{next: 1000}
	b := newBatch(td, "app")
	ms := time.Millisecond
	ok := streamPhases(20*ms, 100*ms, 50*ms, 900*ms)
	b.call(g, callSpec{provider: "openai", model: "gpt-4o-mini", region: "us", tenant: "acme", input: 100, output: 512, ttft: 0.17,
		finish: "length", phases: ok})
	b.call(g, callSpec{provider: "openai", model: "gpt-4o-mini", region: "us", tenant: "acme", input: 100, output: 20, ttft: 0.2,
		finish: "stop", stalls: 2, phases: ok})
	b.call(g, callSpec{provider: "openai", model: "gpt-4o-mini", region: "us", tenant: "beta", errorType: "RateLimitError", status: 429})
	b.call(g, callSpec{provider: "openai", model: "gpt-4o-mini", region: "us", tenant: "beta", errorType: "RateLimitError", status: 429})
	b.call(g, callSpec{provider: "anthropic", model: "claude-haiku", region: "eu", tenant: "beta", errorType: "529", status: 529})
	return td
}

func scenarioDrift() ptrace.Traces {
	td := ptrace.NewTraces()
	g := &ids{next: 2000}
	b := newBatch(td, "app")
	ph := streamPhases(10*time.Millisecond, 90*time.Millisecond, 30*time.Millisecond, 400*time.Millisecond)
	for i, c := range []struct{ region, rev string }{{"us", "fp_a"}, {"us", "fp_a"}, {"eu", "fp_a"}, {"us", "fp_b"}, {"eu", "fp_a"}, {"us", "fp_a"}} {
		b.call(g, callSpec{provider: "openai", model: "gpt-4o", revision: c.rev, region: c.region, tenant: "acme",
			input: 50, output: 10, ttft: 0.13, phases: ph, at: time.Duration(i) * time.Second})
	}
	return td
}

func scenarioAgents() ptrace.Traces {
	td := ptrace.NewTraces()
	g := &ids{next: 3000}
	b := newBatch(td, "agent")
	plan := []string{"search_flights", "compare", "book_flight"}
	// Follows the plan exactly.
	b.run(g, runSpec{agent: "travel-planner", plans: [][]string{plan},
		tools: []toolSpec{{"search_flights", 0}, {"compare", 0}, {"book_flight", 0}}})
	// Deviates: skips compare, calls an unplanned tool.
	b.run(g, runSpec{agent: "travel-planner", plans: [][]string{plan},
		tools: []toolSpec{{"search_flights", 0}, {"send_email", 0}, {"book_flight", 0}}, at: time.Second})
	// Re-orders two steps.
	b.run(g, runSpec{agent: "travel-planner", plans: [][]string{plan},
		tools: []toolSpec{{"compare", 0}, {"search_flights", 0}, {"book_flight", 0}}, at: 2 * time.Second})
	// Re-plans once after the first step; a tool before any plan is extra.
	b.run(g, runSpec{agent: "researcher", plans: [][]string{{"search", "read", "summarize"}, {"search", "summarize"}},
		tools: []toolSpec{{"lookup", -1}, {"search", 0}, {"search", 1}, {"summarize", 1}}, at: 3 * time.Second})
	return td
}

// scenarioFairness is ten batches, one per 30 s window slot: acme and beta send steady traffic;
// "noisy" bursts in slots 2, 5 and 8, when everyone's TTFT rises.
func scenarioFairness() ptrace.Traces {
	td := ptrace.NewTraces()
	g := &ids{next: 4000}
	for slot := 0; slot < 10; slot++ {
		b := newBatch(td, "fleet")
		burst := slot == 2 || slot == 5 || slot == 8
		ttft := 0.3
		if burst {
			ttft = 1.5
		}
		at := time.Duration(slot) * 30 * time.Second
		for i := 0; i < 3; i++ {
			for _, tenant := range []string{"acme", "beta"} {
				b.call(g, callSpec{provider: "openai", model: "gpt-4o-mini", region: "us", tenant: tenant,
					input: 400, output: 100, ttft: ttft + 0.01*float64(i), at: at})
			}
		}
		if burst {
			for i := 0; i < 5; i++ {
				b.call(g, callSpec{provider: "openai", model: "gpt-4o-mini", region: "us", tenant: "noisy",
					input: 8000, output: 2000, ttft: ttft + 0.2, at: at})
			}
		}
	}
	return td
}

func scenarioEnergy() ptrace.Traces {
	td := ptrace.NewTraces()
	g := &ids{next: 5000}
	b := newBatch(td, "app")
	b.call(g, callSpec{provider: "openai", model: "gpt-4o-mini", region: "FR", tenant: "acme", input: 1000, output: 200, energyWh: 0.12, carbonG: 0.006})
	b.call(g, callSpec{provider: "openai", model: "gpt-4o-mini", region: "FR", tenant: "acme", input: 1000, output: 300, energyWh: 0.15, carbonG: 0.0075})
	b.call(g, callSpec{provider: "openai", model: "gpt-4o-mini", region: "us-east-1", tenant: "beta", input: 1000, output: 200, energyWh: 0.12, carbonG: 0.0456})
	return td
}

// scenarioCost prices calls as the SDK does (llmotel.cost.usd per call); the prices, each call's arithmetic and
// the sums the connector must emit are in testdata/golden/cost.md, and TestCostSumsPerTenantModelRegion checks them.
func scenarioCost() ptrace.Traces {
	td := ptrace.NewTraces()
	g := &ids{next: 7000}
	b := newBatch(td, "app")
	b.call(g, callSpec{provider: "openai", model: "gpt-4o-mini", region: "FR", tenant: "acme", input: 1000, output: 200, costUSD: 0.00027})
	b.call(g, callSpec{provider: "openai", model: "gpt-4o-mini", region: "FR", tenant: "acme", input: 2000, cacheRead: 1000, output: 500, costUSD: 0.000525})
	b.call(g, callSpec{provider: "anthropic", model: "claude-sonnet-4", region: "eu", tenant: "acme", input: 3000, output: 400, costUSD: 0.015})
	b.call(g, callSpec{provider: "openai", model: "gpt-4o-mini", region: "us-east-1", tenant: "beta", input: 1000, output: 200, costUSD: 0.00027})
	// A self-hosted model with no known price: no llmotel.cost.usd, so it adds nothing (unknown is not free).
	b.call(g, callSpec{provider: "vllm", model: "llama-3.1-8b", region: "local", tenant: "beta", input: 500, output: 64})
	// A negative price is bad input: the span is rejected (invalid_value) and counts nowhere.
	b.call(g, callSpec{provider: "openai", model: "gpt-4o-mini", region: "us-east-1", tenant: "beta", input: 1000, output: 200, costUSD: -0.00027})
	return td
}

// scenarioBadInput mixes valid calls with every kind of broken span the connector must survive.
func scenarioBadInput() ptrace.Traces {
	td := ptrace.NewTraces()
	g := &ids{next: 6000}
	b := newBatch(td, "app")
	b.call(g, callSpec{provider: "openai", model: "gpt-4o-mini", region: "us", tenant: "acme", input: 10, output: 5, ttft: 0.1})
	mutate := func(f func(s ptrace.Span)) {
		b.call(g, callSpec{provider: "openai", model: "gpt-4o-mini", region: "us", tenant: "acme", input: 10, output: 5})
		f(b.spans.At(b.spans.Len() - 1))
	}
	mutate(func(s ptrace.Span) { s.Attributes().Remove(sc.AttrGenAIRequestModel) })                    // missing_attribute
	mutate(func(s ptrace.Span) { s.Attributes().PutStr(sc.AttrGenAIUsageInputTokens, "ten") })         // wrong_type
	mutate(func(s ptrace.Span) { s.Attributes().PutInt(sc.AttrGenAIUsageOutputTokens, -3) })           // invalid_value
	mutate(func(s ptrace.Span) { s.Attributes().PutDouble(sc.AttrGenAIResponseTimeToFirstChunk, -1) }) // invalid_value
	mutate(func(s ptrace.Span) { s.Attributes().PutInt(sc.AttrGenAIRequestModel, 4) })                 // wrong_type
	mutate(func(s ptrace.Span) { s.SetEndTimestamp(s.StartTimestamp() - 1) })                          // bad_timestamps
	mutate(func(s ptrace.Span) { s.Attributes().PutInt(sc.AttrGenAIOperationName, 1) })                // wrong_type
	// Phase spans: unknown name, missing source, no parent, a parent that never arrives.
	phaseSpan := func(name, source string, parent pcommon.SpanID) {
		p := b.spans.AppendEmpty()
		p.SetTraceID(g.trace())
		p.SetSpanID(g.span())
		p.SetParentSpanID(parent)
		p.SetStartTimestamp(pcommon.NewTimestampFromTime(fixtureEpoch))
		p.SetEndTimestamp(pcommon.NewTimestampFromTime(fixtureEpoch.Add(time.Second)))
		p.Attributes().PutStr(sc.AttrPhaseName, name)
		if source != "" {
			p.Attributes().PutStr(sc.AttrPhaseSource, source)
		}
	}
	phaseSpan("warmup", sc.AttrPhaseSourceClient, g.span())                      // invalid_value
	phaseSpan(sc.AttrPhaseNameQueue, "", g.span())                               // missing_attribute
	phaseSpan(sc.AttrPhaseNameQueue, sc.AttrPhaseSourceClient, pcommon.SpanID{}) // orphan_phase
	phaseSpan(sc.AttrPhaseNameQueue, sc.AttrPhaseSourceClient, g.span())         // orphan_phase at shutdown
	// Agent spans: a plan with steps but no revision, a tool without name, a plan with a non-string tool.
	bad := b.spans.AppendEmpty()
	bad.SetTraceID(g.trace())
	bad.Attributes().PutStr(sc.AttrGenAIOperationName, opPlan)
	bad.Attributes().PutEmptySlice(sc.AttrPlanSteps).AppendEmpty().SetStr("search")
	tool := b.spans.AppendEmpty()
	tool.SetTraceID(g.trace())
	tool.Attributes().PutStr(sc.AttrGenAIOperationName, opExecuteTool)
	mixed := b.spans.AppendEmpty()
	mixed.SetTraceID(g.trace())
	mixed.Attributes().PutStr(sc.AttrGenAIOperationName, opPlan)
	mixed.Attributes().PutInt(sc.AttrPlanRevision, 0)
	mixed.Attributes().PutEmptySlice(sc.AttrPlanTools).AppendEmpty().SetInt(3)
	// Not GenAI at all: ignored, not rejected.
	other := b.spans.AppendEmpty()
	other.SetName("GET /health")
	other.SetKind(ptrace.SpanKindServer)
	return td
}
