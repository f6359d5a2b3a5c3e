package adherence

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// casesPath is the table shared with the Python tests, relative to this package's directory.
var casesPath = filepath.Join("..", "..", "..", "..", "semconv", "adherence_cases.json")

type caseTable struct {
	Tolerance float64 `json:"tolerance"`
	Cases     []struct {
		Name      string   `json:"name"`
		Unplanned []string `json:"unplanned"`
		Revisions []struct {
			Planned  []string `json:"planned"`
			Executed []string `json:"executed"`
		} `json:"revisions"`
		Expect struct {
			Ordered   float64 `json:"ordered"`
			Precision float64 `json:"precision"`
			Recall    float64 `json:"recall"`
			Skipped   int     `json:"skipped"`
			Extra     int     `json:"extra"`
			Repeated  int     `json:"repeated"`
			Reordered int     `json:"reordered"`
			Replans   int     `json:"replans"`
		} `json:"expect"`
	} `json:"cases"`
}

func loadCases(t *testing.T) caseTable {
	t.Helper()
	raw, err := os.ReadFile(casesPath)
	if err != nil {
		t.Fatalf("read shared cases: %v", err)
	}
	var table caseTable
	if err := json.Unmarshal(raw, &table); err != nil {
		t.Fatalf("parse %s: %v", casesPath, err)
	}
	if len(table.Cases) < 15 || table.Tolerance <= 0 {
		t.Fatalf("case table too small (%d cases) or no tolerance", len(table.Cases))
	}
	return table
}

func TestSharedCases(t *testing.T) {
	table := loadCases(t)
	for _, c := range table.Cases {
		t.Run(c.Name, func(t *testing.T) {
			revs := make([]Revision, len(c.Revisions))
			for i, r := range c.Revisions {
				revs[i] = Revision{Planned: r.Planned, Executed: r.Executed}
			}
			got := Score(c.Unplanned, revs)
			floats := []struct {
				name      string
				got, want float64
			}{
				{"ordered", got.Ordered, c.Expect.Ordered},
				{"precision", got.Precision, c.Expect.Precision},
				{"recall", got.Recall, c.Expect.Recall},
			}
			for _, f := range floats {
				if math.Abs(f.got-f.want) > table.Tolerance {
					t.Errorf("%s = %v, want %v", f.name, f.got, f.want)
				}
			}
			ints := []struct {
				name      string
				got, want int
			}{
				{"skipped", got.Skipped, c.Expect.Skipped},
				{"extra", got.Extra, c.Expect.Extra},
				{"repeated", got.Repeated, c.Expect.Repeated},
				{"reordered", got.Reordered, c.Expect.Reordered},
				{"replans", got.Replans, c.Expect.Replans},
			}
			for _, f := range ints {
				if f.got != f.want {
					t.Errorf("%s = %d, want %d", f.name, f.got, f.want)
				}
			}
		})
	}
}

func TestLCSKnownValues(t *testing.T) {
	split := func(s string) []string {
		out := make([]string, len(s))
		for i, r := range s {
			out[i] = string(r)
		}
		return out
	}
	if got := LCS(split("ABCBDAB"), split("BDCABA")); got != 4 { // CLRS textbook example
		t.Errorf("LCS = %d, want 4", got)
	}
	if got := LCS(nil, split("A")); got != 0 {
		t.Errorf("LCS with empty = %d, want 0", got)
	}
}

func TestScoreDoesNotModifyInput(t *testing.T) {
	planned := []string{"a", "b", "c"}
	executed := []string{"c", "a"}
	Score(nil, []Revision{{Planned: planned, Executed: executed}, {Planned: []string{"d"}}})
	if planned[0] != "a" || planned[2] != "c" || executed[0] != "c" || len(executed) != 2 {
		t.Fatalf("input modified: %v %v", planned, executed)
	}
}

func BenchmarkScore(b *testing.B) {
	revs := []Revision{
		{Planned: []string{"search_flights", "compare", "book_flight", "email"}, Executed: []string{"search_flights", "compare"}},
		{Planned: []string{"search_trains", "book_train", "email"}, Executed: []string{"search_trains", "search_trains", "book_train", "email"}},
	}
	b.ReportAllocs()
	for b.Loop() {
		Score([]string{"lookup"}, revs)
	}
}
