package llmsliconnector

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	sc "github.com/llmotel/llmotel/collector/llmsliconnector/internal/semconv"
)

// The attributes ingestCall reads, gathered in one pass over the span's attributes. pcommon.Map.Get is a
// linear scan, and a call reads ~25 keys, most of them absent on another instrumentation's span (and
// several on llmotel's): one pass with a switch costs a fraction of that (bench/RESULTS.md, "collector").
const (
	aModel = iota
	aRevision
	aRegion
	aTenant
	aResponseModel
	aProvider
	aErrorType
	aStatus
	aTruncated
	aInput
	aOutput
	aCacheRead
	aCacheState
	aTTFT
	aTPOT
	aStalls
	aEnergy
	aCarbon
	aCost
	aFingerprint
	aServer
	aFinishReasons
	// Other instrumentations' names (peerattrs.go), read only when llmotel's is absent.
	aPeerModel
	aPeerSystem
	aPeerLlmProvider
	aPeerLlmSystem
	aPeerPromptTokens
	aPeerLlmPrompt
	aPeerCompletionTokens
	aPeerLlmCompletion
	aPeerLlmCacheRead
	numCallAttrs
)

// callAttrSlot maps an attribute name to its slot, -1 when ingestCall does not read it.
func callAttrSlot(key string) int {
	switch key {
	case sc.AttrGenAIRequestModel:
		return aModel
	case sc.AttrModelRevision:
		return aRevision
	case sc.AttrServerRegion:
		return aRegion
	case sc.AttrTenantID:
		return aTenant
	case sc.AttrGenAIResponseModel:
		return aResponseModel
	case sc.AttrGenAIProviderName:
		return aProvider
	case sc.AttrErrorType:
		return aErrorType
	case sc.AttrHTTPResponseStatusCode:
		return aStatus
	case sc.AttrResponseTruncated:
		return aTruncated
	case sc.AttrGenAIUsageInputTokens:
		return aInput
	case sc.AttrGenAIUsageOutputTokens:
		return aOutput
	case sc.AttrGenAIUsageCacheReadInputTokens:
		return aCacheRead
	case sc.AttrCacheState:
		return aCacheState
	case sc.AttrGenAIResponseTimeToFirstChunk:
		return aTTFT
	case sc.AttrDecodeTimePerOutputToken:
		return aTPOT
	case sc.AttrDecodeStallCount:
		return aStalls
	case sc.AttrEnergyWh:
		return aEnergy
	case sc.AttrCarbonGCO2e:
		return aCarbon
	case sc.AttrCostUsd:
		return aCost
	case sc.AttrPromptPrefixFingerprint:
		return aFingerprint
	case sc.AttrServerAddress:
		return aServer
	case sc.AttrGenAIResponseFinishReasons:
		return aFinishReasons
	case sc.AttrLlmModelName:
		return aPeerModel
	case sc.AttrGenAISystem:
		return aPeerSystem
	case sc.AttrLlmProvider:
		return aPeerLlmProvider
	case sc.AttrLlmSystem:
		return aPeerLlmSystem
	case sc.AttrGenAIUsagePromptTokens:
		return aPeerPromptTokens
	case sc.AttrLlmTokenCountPrompt:
		return aPeerLlmPrompt
	case sc.AttrGenAIUsageCompletionTokens:
		return aPeerCompletionTokens
	case sc.AttrLlmTokenCountCompletion:
		return aPeerLlmCompletion
	case sc.AttrLlmTokenCountPromptDetailsCacheRead:
		return aPeerLlmCacheRead
	}
	return -1
}

// callAttrs holds the values of one call span's slots. A key present twice (OTLP does not forbid it)
// keeps its first value, as Map.Get would.
type callAttrs struct {
	v   [numCallAttrs]pcommon.Value
	has [numCallAttrs]bool
}

func (a *callAttrs) fill(span ptrace.Span) {
	span.Attributes().Range(func(k string, v pcommon.Value) bool {
		if i := callAttrSlot(k); i >= 0 && !a.has[i] {
			a.v[i], a.has[i] = v, true
		}
		return true
	})
}

func (a *callAttrs) get(i int) (pcommon.Value, bool) { return a.v[i], a.has[i] }

// first returns the first present slot of slots, in order: llmotel's name, then the peers'.
func (a *callAttrs) first(slots ...int) (pcommon.Value, bool) {
	for _, i := range slots {
		if a.has[i] {
			return a.v[i], true
		}
	}
	return pcommon.Value{}, false
}
