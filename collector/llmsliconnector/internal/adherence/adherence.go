// Package adherence scores how far the tools an agent run executed are from the plans it announced.
//
// It is pure (no collector dependencies) and implements the one definition written in docs/agents.md;
// the Python SDK (src/llmotel/agent/adherence.py) implements the same one, and both are tested against
// semconv/adherence_cases.json.
package adherence

// Revision is one announced plan and the tools executed while it was in force (until the next
// re-plan or the end of the run). Planned lists the steps still to do when it was announced.
type Revision struct {
	Planned  []string
	Executed []string
}

// Result holds the scores of one agent run.
type Result struct {
	Ordered   float64 // sum LCS(plan, executed) / (sum plan length + Repeated), in [0, 1]
	Precision float64 // matched steps / executed tools (multisets)
	Recall    float64 // matched steps / planned steps (multisets)
	Skipped   int     // planned steps never executed
	Extra     int     // executed tools not matched by a planned step (Repeated included)
	Repeated  int     // extra executions of a tool its revision planned: retries and loops
	Reordered int     // matched steps that are not in the longest common subsequence
	Replans   int     // revisions after the first
}

// Score scores a run from its revisions (in announcement order) and the tools executed before the
// first plan. It never panics and does not retain or modify its arguments.
func Score(unplanned []string, revisions []Revision) Result {
	var plannedTotal, lcsTotal, matchedTotal, skipped, reordered, repeated int
	extra := len(unplanned)
	executedTotal := len(unplanned)
	last := len(revisions) - 1
	for r, rev := range revisions {
		plan := rev.Planned
		if r != last {
			plan = EffectivePlan(rev.Planned, rev.Executed)
		}
		m := Matched(plan, rev.Executed)
		l := LCS(plan, rev.Executed)
		plannedTotal += len(plan)
		executedTotal += len(rev.Executed)
		matchedTotal += m
		lcsTotal += l
		skipped += len(plan) - m
		extra += len(rev.Executed) - m
		repeated += Repeated(plan, rev.Executed)
		reordered += m - l
	}

	res := Result{Skipped: skipped, Extra: extra, Repeated: repeated, Reordered: reordered}
	if len(revisions) > 1 {
		res.Replans = len(revisions) - 1
	}
	switch {
	case plannedTotal+repeated > 0:
		res.Ordered = float64(lcsTotal) / float64(plannedTotal+repeated)
	case executedTotal == 0:
		res.Ordered = 1
	}
	res.Precision = ratio(matchedTotal, executedTotal)
	res.Recall = ratio(matchedTotal, plannedTotal)
	return res
}

// Repeated counts the executions of a planned tool beyond the number of times the plan lists it:
// a retry or a loop over the plan, which the ordered score must not reward.
func Repeated(planned, executed []string) int {
	want := counts(planned)
	ran := counts(executed)
	n := 0
	for name, k := range ran {
		if p := want[name]; p > 0 && k > p {
			n += k - p
		}
	}
	return n
}

// ratio is n/d, or 1 when d is 0 (nothing to be imprecise or to miss about).
func ratio(n, d int) float64 {
	if d == 0 {
		return 1
	}
	return float64(n) / float64(d)
}

// EffectivePlan is a superseded revision's plan cut after the last step that was executed while it
// was in force: step i counts as executed when its occurrence number among planned[:i+1] is at most
// the number of times that tool appears in executed. Later steps were dropped by the re-plan.
func EffectivePlan(planned, executed []string) []string {
	available := counts(executed)
	seen := make(map[string]int, len(planned))
	end := 0
	for i, step := range planned {
		seen[step]++
		if seen[step] <= available[step] {
			end = i + 1
		}
	}
	return planned[:end]
}

// Matched is the size of the multiset intersection of planned and executed.
func Matched(planned, executed []string) int {
	available := counts(executed)
	n := 0
	for _, step := range planned {
		if available[step] > 0 {
			available[step]--
			n++
		}
	}
	return n
}

// LCS is the length of the longest common subsequence, O(len(a)*len(b)) time, O(len(b)) memory.
func LCS(a, b []string) int {
	if len(a) == 0 || len(b) == 0 {
		return 0
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for _, x := range a {
		for j, y := range b {
			if x == y {
				cur[j+1] = prev[j] + 1
			} else {
				cur[j+1] = max(prev[j+1], cur[j])
			}
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func counts(names []string) map[string]int {
	m := make(map[string]int, len(names))
	for _, name := range names {
		m[name]++
	}
	return m
}
