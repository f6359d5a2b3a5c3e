package fairness

import "math"

// sketch is a fixed log-bucket histogram for window quantiles: mergeable by adding counts, O(1)
// insert, relative error under growth/2 (about 7 %). Bucket 0 holds values below minValue.
type sketch [sketchBuckets]uint32

const (
	sketchBuckets = 110
	minValue      = 0.001 // seconds
	growth        = 1.15
)

var logGrowth = math.Log(growth)

func (s *sketch) add(v float64) {
	s[bucketOf(v)]++
}

func bucketOf(v float64) int {
	if !(v > minValue) { // also catches NaN
		return 0
	}
	i := 1 + int(math.Log(v/minValue)/logGrowth)
	if i >= sketchBuckets {
		i = sketchBuckets - 1
	}
	return i
}

// upper returns a representative value of bucket i (geometric middle of its range).
func upper(i int) float64 {
	if i == 0 {
		return minValue
	}
	return minValue * math.Pow(growth, float64(i)-0.5)
}

func (s *sketch) merge(o *sketch) {
	for i := range s {
		s[i] += o[i]
	}
}

func (s *sketch) count() uint64 {
	var n uint64
	for _, c := range s {
		n += uint64(c)
	}
	return n
}

// quantile returns the q-quantile (0 < q <= 1), or 0 when empty.
func (s *sketch) quantile(q float64) float64 {
	n := s.count()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	var seen uint64
	for i, c := range s {
		seen += uint64(c)
		if seen >= rank {
			return upper(i)
		}
	}
	return upper(sketchBuckets - 1)
}
