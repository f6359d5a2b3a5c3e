package llmsliconnector

import (
	"context"
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
		b, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte("\x00\xff\x10garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
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
