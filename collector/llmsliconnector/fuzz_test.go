package llmsliconnector

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.opentelemetry.io/collector/connector/connectortest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/llmotel/llmotel/collector/llmsliconnector/internal/metadata"
	sc "github.com/llmotel/llmotel/collector/llmsliconnector/internal/semconv"
)

// FuzzConsumeTraces feeds arbitrary OTLP protobuf (seeded with the recorded batches) and, from the same
// bytes, spans whose llmotel attributes take arbitrary types and values. The connector must never
// panic and must keep emitting metrics.
func FuzzConsumeTraces(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "traces", "*.json"))
	for _, path := range files {
		raw, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		td, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces(raw)
		if err != nil {
			f.Fatal(err)
		}
		for _, seed := range splitByTrace(td) {
			b, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(seed)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte{})
	f.Add([]byte("\x00\xff\x10garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzInput {
			return // see maxFuzzInput
		}
		cfg := testConfig()
		cfg.Cardinality.MaxValuesPerDimension = 16
		cfg.TraceBuffer.MaxTraces = 8
		cfg.TraceBuffer.MaxPendingPhases = 8
		clk := newHarnessClock()
		conn := newConnector(connectortest.NewNopSettings(metadata.Type), cfg, consumertest.NewNop(), clk)
		ctx := context.Background()
		if td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(data); err == nil {
			_ = conn.ConsumeTraces(ctx, td)
		}
		_ = conn.ConsumeTraces(ctx, spansFromBytes(data))
		clk.Advance(time.Hour)
		_ = conn.flush(ctx, false)
		_ = conn.Shutdown(ctx)
	})
}

// maxFuzzInput bounds the inputs worth executing (seeds are one trace each, at most ~1.5 KiB).
const maxFuzzInput = 4096

// fuzzMinimizeExecs is the default -test.fuzzminimizetime. Every input that finds new coverage is
// minimized before fuzzing goes on, and byte-level minimization is quadratic in the input's length:
// on recorded OTLP batches (KBs) each minimization ran to the 60 s default, so a 10 s run spent the
// whole time minimizing and reported ~15 executions. A count bounds each minimization to well under
// a second; an explicit -fuzzminimizetime still wins.
const fuzzMinimizeExecs = "1000x"

// boundFuzzMinimization applies fuzzMinimizeExecs unless the flag was given. Called from TestMain.
func boundFuzzMinimization() {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.fuzzminimizetime" })
	if !given {
		_ = flag.Set("test.fuzzminimizetime", fuzzMinimizeExecs)
	}
}

// splitByTrace returns one batch per (resource, scope, trace ID) of td, keeping each seed small.
func splitByTrace(td ptrace.Traces) []ptrace.Traces {
	var out []ptrace.Traces
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			byTrace := map[pcommon.TraceID]ptrace.SpanSlice{}
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				id := spans.At(k).TraceID()
				dst, ok := byTrace[id]
				if !ok {
					seed := ptrace.NewTraces()
					rs := seed.ResourceSpans().AppendEmpty()
					rss.At(i).Resource().CopyTo(rs.Resource())
					ss := rs.ScopeSpans().AppendEmpty()
					sss.At(j).Scope().CopyTo(ss.Scope())
					dst = ss.Spans()
					byTrace[id] = dst
					out = append(out, seed)
				}
				spans.At(k).CopyTo(dst.AppendEmpty())
			}
		}
	}
	return out
}

// spansFromBytes builds a call span, a phase span and agent spans whose attributes are typed and
// valued by the fuzzer's bytes.
func spansFromBytes(data []byte) ptrace.Traces {
	if len(data) > 256 { // the attribute mix of the first bytes is enough; keeps each execution fast
		data = data[:256]
	}
	td := ptrace.NewTraces()
	spans := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	keys := []string{
		sc.AttrGenAIOperationName, sc.AttrGenAIRequestModel, sc.AttrGenAIUsageInputTokens, sc.AttrGenAIUsageOutputTokens,
		sc.AttrGenAIUsageCacheReadInputTokens, sc.AttrGenAIResponseTimeToFirstChunk, sc.AttrPhaseName, sc.AttrPhaseSource,
		sc.AttrTenantID, sc.AttrServerRegion, sc.AttrModelRevision, sc.AttrPlanTools, sc.AttrPlanRevision, sc.AttrGenAIToolName,
		sc.AttrEnergyWh, sc.AttrDecodeStallCount, sc.AttrGenAIResponseFinishReasons, sc.AttrGenAIAgentName,
		sc.AttrCostUsd,
	}
	ops := []string{"chat", opInvokeAgent, opPlan, opExecuteTool}
	var parent pcommon.SpanID
	for n := 0; n < 4; n++ {
		s := spans.AppendEmpty()
		var tid pcommon.TraceID
		var sid pcommon.SpanID
		tid[0], sid[0], sid[1] = 1, byte(n+1), byte(len(data))
		s.SetTraceID(tid)
		s.SetSpanID(sid)
		s.SetParentSpanID(parent)
		parent = sid
		s.SetKind(ptrace.SpanKind(n % 6))
		start := pcommon.Timestamp(1_700_000_000_000_000_000)
		s.SetStartTimestamp(start)
		s.Attributes().PutStr(sc.AttrGenAIOperationName, ops[n])
		for i, b := range data {
			key := keys[(i+n)%len(keys)]
			switch b % 7 {
			case 0:
				s.Attributes().PutStr(key, string(data[i:min(len(data), i+3)]))
			case 1:
				s.Attributes().PutInt(key, int64(int8(b))*1000)
			case 2:
				s.Attributes().PutDouble(key, float64(int8(b))/7)
			case 3:
				s.Attributes().PutBool(key, b%2 == 0)
			case 4:
				sl := s.Attributes().PutEmptySlice(key)
				sl.AppendEmpty().SetStr(string(rune(b)))
				sl.AppendEmpty().SetInt(int64(b))
			case 5:
				s.Attributes().PutEmptyBytes(key).FromRaw(data[i:min(len(data), i+2)])
			case 6:
				s.Attributes().PutEmptyMap(key)
			}
			start += pcommon.Timestamp(b) * 1e6
		}
		if len(data) > 0 && data[0]%3 == 0 {
			s.SetEndTimestamp(s.StartTimestamp() - 1)
		} else {
			s.SetEndTimestamp(start)
		}
	}
	return td
}
