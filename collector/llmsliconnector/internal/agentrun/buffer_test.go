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

func TestLinksAreKeptOnlyForHeldTracesAndCountInTheByteBound(t *testing.T) {
	b := NewBuffer(Limits{MaxTraces: 100, MaxBytes: 2000, Wait: time.Second, MaxAge: time.Minute})
	b.AddLink(tid(1), sid(2), sid(1)) // trace not held: nothing to attribute, nothing kept
	assert.Zero(t, b.Len())
	assert.Zero(t, b.Bytes())
	b.AddTool(tid(1), sid(3), "a", NoRevision, t0, t0)
	before := b.Bytes()
	b.AddLink(tid(1), sid(3), sid(2))
	b.AddLink(tid(1), sid(9), pcommon.SpanID{}) // a root: no link to keep
	assert.Equal(t, before+linkBytes, b.Bytes())
	for i := byte(10); i < 250; i++ { // one trace alone never grows past the bound through its links
		b.AddLink(tid(1), sid(i), sid(i-1))
	}
	assert.LessOrEqual(t, b.Bytes(), 2000)
	b.AddTool(tid(2), sid(1), "b", NoRevision, t0, t0)
	b.AddLink(tid(2), sid(1), sid(7)) // over the bound: the oldest other trace goes
	assert.LessOrEqual(t, b.Bytes(), 2000)
	assert.Equal(t, 1, b.Len())
	b.Flush()
	assert.Zero(t, b.Bytes())
}

func TestOutermostAgentWhenLinksAreMissing(t *testing.T) {
	// outer's parent is a remote span (unknown); inner's chain reaches outer. inner arrives first
	// and started later; the tool's parent never arrived.
	b := NewBuffer(Limits{MaxTraces: 10, MaxBytes: 1 << 20, Wait: time.Second, MaxAge: time.Minute})
	b.AddPlan(tid(1), sid(2), 0, t0, []string{"lookup"}, t0)
	b.AddPlan(tid(1), sid(1), 0, t0, []string{"search"}, t0)
	b.AddTool(tid(1), sid(42), "search", NoRevision, t0.Add(time.Second), t0)
	b.AddAgent(tid(1), sid(2), sid(3), "inner", t0.Add(time.Second), t0)
	b.AddLink(tid(1), sid(3), sid(1))
	b.AddAgent(tid(1), sid(1), sid(99), "outer", t0, t0)
	runs := b.Flush()
	require.Len(t, runs, 2)
	for _, r := range runs {
		assert.Equal(t, map[string]float64{"inner": 0, "outer": 1}[r.Agent], r.Result.Recall, r.Agent)
	}
}

func TestCyclicLinksDoNotHang(t *testing.T) {
	b := NewBuffer(Limits{MaxTraces: 10, MaxBytes: 1 << 20, Wait: time.Second, MaxAge: time.Minute})
	b.AddPlan(tid(1), sid(5), 0, t0, []string{"a"}, t0)
	b.AddTool(tid(1), sid(5), "a", NoRevision, t0, t0)
	b.AddLink(tid(1), sid(5), sid(6))
	b.AddLink(tid(1), sid(6), sid(5))
	b.AddAgent(tid(1), sid(1), sid(1), "self-parented", t0, t0)
	runs := b.Flush()
	require.Len(t, runs, 1, "unattributable spans fall back to the only agent")
	assert.Equal(t, 1.0, runs[0].Result.Recall)
}

// The SDK records at most MaxRecordedNames tool names on the root: a run with more tools than that is
// whole when at least the cap arrived, split when fewer did. A re-plan recorded on the root but not
// arrived splits the run too.
func TestSplitAgainstTheRootsRecord(t *testing.T) {
	lim := Limits{MaxTraces: 10, MaxBytes: 1 << 22, Wait: time.Second, MaxAge: time.Minute}
	run := func(tools int, rec Recorded, plans int) Run {
		b := NewBuffer(lim)
		for r := 0; r < plans; r++ {
			b.AddPlan(tid(1), sid(9), r, t0, []string{"a"}, t0)
		}
		for i := 0; i < tools; i++ {
			b.AddTool(tid(1), sid(9), "a", 0, t0.Add(time.Duration(i)*time.Millisecond), t0)
		}
		b.AddAgentRecorded(tid(1), sid(9), pcommon.SpanID{}, "agent", t0, t0, rec)
		runs := b.Expire(t0.Add(2 * time.Second))
		require.Len(t, runs, 1)
		return runs[0]
	}
	assert.False(t, run(MaxRecordedNames, Recorded{Known: true, Executed: MaxRecordedNames, Plans: 1}, 1).Split,
		"a capped record is met by the cap")
	assert.True(t, run(10, Recorded{Known: true, Executed: MaxRecordedNames, Plans: 1}, 1).Split)
	assert.False(t, run(3, Recorded{Known: true, Executed: 2, Plans: 1}, 1).Split, "a duplicate is not a split")
	assert.True(t, run(2, Recorded{Known: true, Executed: 2, Plans: 2}, 1).Split, "the re-plan went elsewhere")
	assert.False(t, run(1, Recorded{}, 1).Split, "no record, nothing missing that the spans show")
}
