// Package llmphasesprocessor rewrites llmotel's phase spans to the durations a self-hosted server measured.
//
// vLLM (--otlp-traces-endpoint; vllm/v1/engine/output_processor.py do_tracing) exports one SERVER span
// "llm_request" per request, a child of the request's traceparent, with the engine's own gen_ai.latency.*
// durations (float seconds); SGLang (--enable-trace) uses the same keys. When llmotel propagated its trace
// context, that span is a child of llmotel's call span. For such a call, llm_phases rewrites the call's queue
// and prefill children to the server's time_in_queue and time_in_model_prefill (llmotel.phase.source = server,
// the SDK's value kept in llmotel.phase.estimated_duration) and keeps the phases tiling the call: the phase
// after prefill (first_token, else decode) now starts where the measured prefill ends.
//
// The processor is stateless: it sees the call span and its server span together only if they arrive in one
// batch, so it runs after the groupbytrace processor, which holds each trace for its wait_duration (the
// latency this adds) and within num_traces (its memory bound). Spans of traces without a server span pass
// through unchanged.
package llmphasesprocessor // import "github.com/llmotel/llmotel/collector/llmphasesprocessor"

// Config of llm_phases. It has no settings: the wait and the memory bound are groupbytrace's.
type Config struct{}

// Validate accepts every configuration.
func (*Config) Validate() error { return nil }
