package fairness

import (
	"math"
	"sort"
)

// waterfill splits capacity among demands by weighted max-min fairness with equal weights
// (water-filling): every tenant gets min(demand, level), with the level chosen so the shares add
// up to the capacity, or to the total demand when that is smaller. A demand of +Inf is a tenant
// that would take everything it is given. Returns the shares in the order of demands.
func waterfill(capacity float64, demands []float64) []float64 {
	shares := make([]float64, len(demands))
	if capacity <= 0 || len(demands) == 0 {
		return shares
	}
	order := make([]int, len(demands))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return demands[order[a]] < demands[order[b]] })
	left, n := capacity, len(demands)
	for k, i := range order {
		level := left / float64(n-k)
		if demands[i] <= level {
			shares[i] = math.Max(0, demands[i])
			left -= shares[i]
			continue
		}
		for _, j := range order[k:] {
			shares[j] = level
		}
		return shares
	}
	return shares
}

// jain is Jain's fairness index (Jain, Chiu, Hawe 1984) of xs: (sum x)^2 / (n * sum x^2),
// 1 when all are equal, 1/n when one gets everything. 1 for an empty or all-zero input
// (nobody to be unfair to).
func jain(xs []float64) float64 {
	var s, s2 float64
	for _, x := range xs {
		s += x
		s2 += x * x
	}
	if len(xs) == 0 || s2 == 0 {
		return 1
	}
	return s * s / (float64(len(xs)) * s2)
}

// nearestRank is the q-quantile of sorted values by the nearest-rank method (the value at rank
// ceil(q*n)); 0 when empty.
func nearestRank(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	r := int(math.Ceil(q*float64(len(sorted)))) - 1
	if r < 0 {
		r = 0
	}
	return sorted[r]
}

// overlap is the length in seconds of [a0, a1) ∩ [b0, b1).
func overlap(a0, a1, b0, b1 float64) float64 {
	return math.Max(0, math.Min(a1, b1)-math.Max(a0, b0))
}
