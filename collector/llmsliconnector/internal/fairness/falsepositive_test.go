package fairness

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestIndependentLoadsRarelyName is the false-positive bound at unit level: three tenants share a
// pool with independent random loads and waits (a wait is not caused by anyone's load); over 200 randomized
// windows, each evaluated twice one slot apart, a tenant is named in at most 5 % of them.
func TestIndependentLoadsRarelyName(t *testing.T) {
	rng := rand.New(rand.NewPCG(18, 2026))
	windows, named, significant := 200, 0, 0
	for w := 0; w < windows; w++ {
		tr := NewTracker(Options{Window: 100 * time.Second, Slots: 10, Permutations: 199})
		base := float64(w) * 1000 // a fresh window, aligned to the slots
		for s := 0; s < 11; s++ {
			if s == 10 {
				tr.Snapshot(sec(base + 99))
			}
			now := sec(base + float64(s)*10 + 9.9)
			for _, name := range []string{"a", "b", "c"} {
				for k := rng.IntN(4); k > 0; k-- {
					start := base + float64(s)*10 + rng.Float64()*10
					wait := 0.0
					if rng.Float64() < 0.3 {
						wait = rng.Float64() * 5
					}
					serve := 0.2 + rng.Float64()*3
					in := float64(100 + rng.IntN(20000))
					tr.Observe(now, mk(name, poolP, start, wait, start+wait+serve, in, 50, wait+0.2, true))
				}
			}
		}
		rep := tr.Snapshot(sec(base + 109))
		for _, tenant := range rep.Pools[0].Tenants {
			if tenant.PValue <= 0.05/3 {
				significant++
			}
			if tenant.Named {
				named++
				break
			}
		}
	}
	t.Logf("significant in one evaluation: %d tenant-windows; named: %d windows of %d", significant, named, windows)
	assert.LessOrEqual(t, float64(named)/float64(windows), 0.05, fmt.Sprintf("named in %d of %d windows", named, windows))
}
