package llmsliconnector

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	sc "github.com/llmotel/llmotel/collector/llmsliconnector/internal/semconv"
)

// LLM call spans from other instrumentations ("peers"): the names they use where llmotel's span uses
// another, read only when the usual name is absent, in the order listed. Each entry names the source it
// was read from; contrib's genainormalizer processor is not served by the module proxy this project
// builds from (collector/README.md, "Spans from other instrumentations"), so the mapping lives here.
//
//   - OpenTelemetry GenAI instrumentations: opentelemetry-instrumentation-genai-openai 1.3b0 with
//     opentelemetry-util-genai 1.3b0 (util/genai/_inference_invocation.py _get_attributes) set the current
//     names, gen_ai.response.time_to_first_chunk included, and nothing else is needed. The deprecated
//     opentelemetry-instrumentation-openai-v2 2.4b0 in its default mode (patch.py
//     chat_completions_create_v_old, utils.py) sets gen_ai.system instead of gen_ai.provider.name and no
//     time to first chunk (it has one with OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental).
//   - OpenLLMetry, opentelemetry-instrumentation-openai 0.62.4 (shared/__init__.py _set_request_attributes,
//     _set_response_attributes; shared/chat_wrappers.py): current gen_ai.* names for model, usage and
//     provider; the request's `user` as gen_ai.user; no time-to-first-chunk attribute, but one span event
//     gen_ai.content.completion.chunk per streamed chunk (_process_item). Older releases name the operation
//     llm.request.type (semconv_ai 0.5.1 LLM_REQUEST_TYPE) and the usage gen_ai.usage.prompt_tokens /
//     completion_tokens (semconv_ai LLM_USAGE_PROMPT_TOKENS / LLM_USAGE_COMPLETION_TOKENS).
//   - OpenInference (openinference-semantic-conventions, semconv/trace/__init__.py SpanAttributes): INTERNAL
//     spans with openinference.span.kind = LLM, llm.model_name, llm.provider / llm.system,
//     llm.token_count.*, user.id; the first streamed chunk is an event "First Token Stream Event"
//     (openinference-instrumentation-openai _stream.py _process_chunk).
//
// The revision is gen_ai.response.model (the dated snapshot) when llmotel.model.revision is absent. A
// system fingerprint is not used: the GenAI instrumentation sets it on non-streamed calls only
// (genai-openai 1.3b0 patch.py), so a revision read from it would flip with the call's streaming mode and
// read as drift.
//
// The peers' names have slots of their own in callattrs.go (aPeer*), read in ingestCall in this order:
//
//	model        gen_ai.request.model, llm.model_name
//	provider     gen_ai.provider.name, gen_ai.system, llm.provider, llm.system
//	input        gen_ai.usage.input_tokens, gen_ai.usage.prompt_tokens, llm.token_count.prompt
//	output       gen_ai.usage.output_tokens, gen_ai.usage.completion_tokens, llm.token_count.completion
//	cache reads  gen_ai.usage.cache_read.input_tokens, llm.token_count.prompt_details.cache_read
//	TTFT         gen_ai.response.time_to_first_chunk, else the first of peerFirstChunkEvents
//	tenant       llmotel.tenant.id, else Config.TenantAttributes in order (default user.id, enduser.id)

// Span events whose first occurrence is the first streamed chunk.
var peerFirstChunkEvents = []string{sc.AttrGenAIContentCompletionChunk, "First Token Stream Event"}

// Values that mark a peer span as a model call.
const (
	openInferenceLLM = "LLM" // openinference.span.kind
	llmotelScope     = "llmotel"
)

// peerInferenceOps are the gen_ai.operation.name values of a model call (GenAI conventions) accepted
// from other instrumentations; their other CLIENT operations (fetch_response, create_agent, retrieval,
// ...) are not calls. llmotel's own spans keep the wider rule: any operation but the agent ones.
var peerInferenceOps = map[string]bool{"chat": true, "text_completion": true, "generate_content": true, "embeddings": true}

// isPeerCall recognises a peer span without gen_ai.operation.name as a model call (OpenInference; older
// OpenLLMetry). Asked only for spans outside llmotel's scope, so llmotel's phase spans pay nothing.
func isPeerCall(span ptrace.Span) bool {
	attrs := span.Attributes()
	if v, ok := attrs.Get(sc.AttrOpeninferenceSpanKind); ok {
		return v.Type() == pcommon.ValueTypeStr && v.Str() == openInferenceLLM
	}
	if v, ok := attrs.Get(sc.AttrLlmRequestType); ok && span.Kind() == ptrace.SpanKindClient {
		return v.Type() == pcommon.ValueTypeStr && (v.Str() == "chat" || v.Str() == "completion")
	}
	return false
}

// firstStr reads the first present key of keys as a string ("" if none).
func (r *reader) firstStr(keys []string) string {
	for _, k := range keys {
		if _, ok := r.attrs.Get(k); ok {
			return r.str(k)
		}
	}
	return ""
}

// firstChunkTime is the time from the span's start to its first streamed-chunk event, for peers that
// record the first chunk as an event rather than as gen_ai.response.time_to_first_chunk.
func firstChunkTime(span ptrace.Span) (float64, bool) {
	events := span.Events()
	for i := 0; i < events.Len(); i++ {
		e := events.At(i)
		for _, name := range peerFirstChunkEvents {
			if e.Name() == name {
				start, at := span.StartTimestamp(), e.Timestamp()
				if start == 0 || at < start {
					return 0, false
				}
				return float64(at-start) / 1e9, true
			}
		}
	}
	return 0, false
}
