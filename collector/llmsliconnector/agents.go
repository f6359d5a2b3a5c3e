package llmsliconnector

import (
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/llmotel/llmotel/collector/llmsliconnector/internal/agentrun"
	sc "github.com/llmotel/llmotel/collector/llmsliconnector/internal/semconv"
)

// Values of llmotel.sli.split.part: which part of a split agent run this collector saw.
const (
	splitRoot     = "root"     // the run's root span, without all of the run's plans or tools
	splitFragment = "fragment" // plans or planned tools whose root never arrived (expired after max_age)
)

// addAgent buffers an invoke_agent span with what the SDK recorded on it about the whole run, so that
// a run whose spans were split across collectors is counted as split rather than scored from a part.
func (c *llmSLI) addAgent(span ptrace.Span, name string, now time.Time) {
	c.agents.AddAgentRecorded(span.TraceID(), span.SpanID(), span.ParentSpanID(), name,
		span.StartTimestamp().AsTime(), now, recordedRun(span.Attributes()))
}

// recordedRun reads llmotel.agent.executed_tools / planned_tools / replans leniently: a root without
// them (another SDK, an unfinished run) or with odd types is simply not Known; it is never rejected.
func recordedRun(attrs pcommon.Map) agentrun.Recorded {
	executed, ok := attrs.Get(sc.AttrAgentExecutedTools)
	if !ok || executed.Type() != pcommon.ValueTypeSlice {
		return agentrun.Recorded{}
	}
	rec := agentrun.Recorded{Known: true, Executed: executed.Slice().Len()}
	if _, planned := attrs.Get(sc.AttrAgentPlannedTools); planned {
		rec.Plans = 1
		if v, ok := attrs.Get(sc.AttrAgentReplans); ok && v.Type() == pcommon.ValueTypeInt && v.Int() > 0 {
			rec.Plans += int(min(v.Int(), 1<<20))
		}
	}
	return rec
}

// recordSplit counts split runs (not scored: their adherence would be computed from part of the run).
func (c *llmSLI) recordSplit(agent, part string, n int64, now time.Time) {
	v := c.scratch[:2]
	v[0], v[1] = agent, part
	c.st.runsSplit.Add(v, float64(n), now)
}
