// Package metadata holds the component's type and stability (what mdatagen would generate from
// ../../metadata.yaml; written by hand to keep the build free of a code-generation step).
package metadata

import "go.opentelemetry.io/collector/component"

var (
	// Type is the connector's type name in collector configs.
	Type = component.MustNewType("llm_sli")
	// ScopeName is the instrumentation scope of the metrics the connector emits.
	ScopeName = "github.com/llmotel/llmotel/collector/llmsliconnector"
)

// TracesToMetricsStability is the stability of the traces -> metrics pipeline pair.
const TracesToMetricsStability = component.StabilityLevelAlpha
