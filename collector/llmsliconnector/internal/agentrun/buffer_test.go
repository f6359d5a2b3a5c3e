package agentrun

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func tid(n byte) pcommon.TraceID { return pcommon.TraceID{n} }
func sid(n byte) pcommon.SpanID  { return pcommon.SpanID{n} }

func TestRunIsScoredAfterTheWait(t *testing.T) {
	b := NewBuffer(Limits{MaxTraces: 10, MaxBytes: 1 << 20, Wait: 2 * time.Second, MaxAge: time.Minute})
	b.AddPlan(tid(1), sid(9), 0, t0, []string{"a", "b"}, t0)
	b.AddTool(tid(1), sid(9), "a", 0, t0.Add(time.Second), t0)
	b.AddAgent(tid(1), sid(9), pcommon.SpanID{}, "agent", t0, t0)
	assert.Empty(t, b.Expire(t0.Add(time.Second)), "still waiting for late children")
	b.AddTool(tid(1), sid(9), "b", 0, t0.Add(2*time.Second), t0.Add(time.Second)) // late child
	runs := b.Expire(t0.Add(3 * time.Second))
	require.Len(t, runs, 1)
	assert.Equal(t, "agent", runs[0].Agent)
	assert.Equal(t, 1.0, runs[0].Result.Ordered)
	assert.Zero(t, b.Len())
	assert.Zero(t, b.Bytes())
}

func TestBufferIsBoundedInBytes(t *testing.T) {
	b := NewBuffer(Limits{MaxTraces: 100, MaxBytes: 1000, Wait: time.Second, MaxAge: time.Minute})
	for i := byte(1); i <= 20; i++ {
		b.AddPlan(tid(i), sid(i), 0, t0, []string{"search_flights", "compare", "book_flight"}, t0)
	}
	assert.LessOrEqual(t, b.Bytes(), 1000)
	assert.Positive(t, b.TakeEvicted())
	assert.Less(t, b.Len(), 20)
}

func TestOnlyLostPlansCountAsEvicted(t *testing.T) {
	b := NewBuffer(Limits{MaxTraces: 100, MaxBytes: 1 << 20, Wait: time.Second, MaxAge: time.Minute})
	b.AddTool(tid(1), sid(1), "lonely_tool", NoRevision, t0, t0) // a tool outside any agent run
	b.AddPlan(tid(2), sid(2), 0, t0, []string{"a"}, t0)          // a plan whose run never ended
	assert.Empty(t, b.Expire(t0.Add(2*time.Minute)))
	assert.Equal(t, int64(1), b.TakeEvicted())
	assert.Zero(t, b.Len())
}

func TestFlushScoresCompleteRunsAndCountsTheRest(t *testing.T) {
	b := NewBuffer(Limits{MaxTraces: 100, MaxBytes: 1 << 20, Wait: time.Hour, MaxAge: 2 * time.Hour})
	b.AddPlan(tid(1), sid(1), 0, t0, []string{"a"}, t0)
	b.AddAgent(tid(1), sid(1), pcommon.SpanID{}, "done", t0, t0)
	b.AddPlan(tid(2), sid(2), 0, t0, []string{"a"}, t0)
	runs := b.Flush()
	require.Len(t, runs, 1)
	assert.Equal(t, int64(1), b.TakeEvicted())
}
