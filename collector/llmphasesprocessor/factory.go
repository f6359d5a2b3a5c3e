package llmphasesprocessor

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processorhelper"
)

// typeStr is the component type in collector configs.
const typeStr = "llm_phases"

// NewFactory returns the llm_phases processor factory.
func NewFactory() processor.Factory {
	return processor.NewFactory(component.MustNewType(typeStr), createDefaultConfig,
		processor.WithTraces(createTraces, component.StabilityLevelAlpha))
}

func createDefaultConfig() component.Config { return &Config{} }

func createTraces(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Traces) (processor.Traces, error) {
	return processorhelper.NewTraces(ctx, set, cfg, next, processTraces,
		processorhelper.WithCapabilities(consumer.Capabilities{MutatesData: true}))
}

func processTraces(_ context.Context, td ptrace.Traces) (ptrace.Traces, error) {
	Rewrite(td)
	return td, nil
}
