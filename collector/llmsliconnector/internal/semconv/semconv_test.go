package semconv

import (
	"strings"
	"testing"
)

// The generated names must keep the namespaces the Python SDK emits; a registry edit that
// breaks them shows up here as well as in the staleness check.
func TestGeneratedNamesAreNamespaced(t *testing.T) {
	for _, name := range []string{AttrPhaseName, AttrPhaseSource, AttrTenantID, MetricSLITimeToFirstToken} {
		if !strings.HasPrefix(name, "llmotel.") {
			t.Errorf("%q is not under llmotel.", name)
		}
	}
	if got := LatestExperimentalRenames[AttrGenAIUsageCacheCreationInputTokens]; got != AttrGenAIUsageCacheWriteInputTokens {
		t.Errorf("cache_creation renames to %q, want %q", got, AttrGenAIUsageCacheWriteInputTokens)
	}
	for name, buckets := range MetricBuckets {
		for i := 1; i < len(buckets); i++ {
			if buckets[i] <= buckets[i-1] {
				t.Errorf("%s: buckets not increasing at %d", name, i)
			}
		}
	}
}
