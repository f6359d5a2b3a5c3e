"""Server timing read exactly: one response per server, in the shape that server's code builds at a named version.

Each fixture cites the server source it follows (field names, nesting, JSON types); the numbers are invented
and every expected value is computed by hand beside it. The ``*_through_the_client`` tests serve the exact
bytes on loopback and read them with the real ``openai`` client and llmotel's OpenAI readers, so what the
client library does to unknown keys (``model_extra``) is part of what is tested.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai
import pytest

from llmotel import _semconv as sc
from llmotel import config
from llmotel.phases import server_timing
from llmotel.providers.openai import read_chat_chunk, read_chat_result
from llmotel.record import LLMResponse, ServerTiming

# ---- a loopback server answering with exact canned bytes ------------------------------------------------

# path (after /v1) -> (extra headers, body): a dict is a JSON body, a list of dicts an SSE stream + [DONE].
Canned = tuple[dict[str, str], Any]
_CANNED: dict[str, Canned] = {}


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        headers, body = _CANNED[self.headers["x-canned"]]
        if isinstance(body, list):
            raw = b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in body) + b"data: [DONE]\n\n"
            ctype = "text/event-stream"
        else:
            raw, ctype = json.dumps(body).encode(), "application/json"
        self.send_response(200)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(raw)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture(scope="module")
def canned() -> Iterator[openai.OpenAI]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield openai.OpenAI(base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", api_key="k", max_retries=0)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


MSGS: list[Any] = [{"role": "user", "content": "hi"}]


def _read(client: openai.OpenAI, name: str, headers: dict[str, str], body: Any) -> ServerTiming:
    """Serve ``body`` with ``headers``, read it with the real client and llmotel's readers, parse the timing."""
    _CANNED[name] = (headers, body)
    stream = isinstance(body, list)
    raw = client.chat.completions.with_raw_response.create(
        model="m", messages=MSGS, stream=stream, extra_headers={"x-canned": name}  # type: ignore[call-overload]
    )
    response = LLMResponse(headers={k.lower(): v for k, v in raw.headers.items()})
    if stream:
        for chunk in raw.parse():
            read_chat_chunk(chunk, response)
    else:
        read_chat_result(raw.parse(), response, config.resolve(env={}))
    return server_timing.parse(response.headers, response.body_timing)


def _approx(timing: ServerTiming, **expected: float | None) -> None:
    for name, value in expected.items():
        got = getattr(timing, name)
        assert got == (None if value is None else pytest.approx(value, abs=1e-9)), (name, got, value)


# ---- vLLM --------------------------------------------------------------------------------------------------
# vllm-project/vllm vllm/entrypoints/generate/base/serving.py @ 62effaeeea07 (build_per_request_timing_metrics)
# and protocol.py @ 567b35aa7b69 (PerRequestMetrics); the flag ships in v0.27.1. Top-level "metrics", ms, on
# the body and on the final usage chunk (choices: []) of a stream with stream_options.include_usage.

VLLM_METRICS = {"time_to_first_token_ms": 85.2, "generation_time_ms": 1240.5, "queue_time_ms": 12.3,
                "mean_itl_ms": 9.1, "tokens_per_second": 103.2}
VLLM_USAGE = {"prompt_tokens": 42, "completion_tokens": 128, "total_tokens": 170}
VLLM_BODY = {"id": "chatcmpl-abc123", "object": "chat.completion", "created": 1781202801, "model": "m",
             "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
             "usage": VLLM_USAGE, "system_fingerprint": "vllm-0.27.1-1a2b3c4d", "metrics": VLLM_METRICS}
_VLLM_CHUNK = {"id": "chatcmpl-abc123", "object": "chat.completion.chunk", "created": 1781202801, "model": "m"}
VLLM_STREAM = [
    {**_VLLM_CHUNK, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}, "finish_reason": None}]},
    {**_VLLM_CHUNK, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    {**_VLLM_CHUNK, "choices": [], "usage": VLLM_USAGE, "metrics": VLLM_METRICS},
]
# queue 12.3 ms; prefill = TTFT measured from scheduling 85.2 ms; decode 1240.5 ms; busy 85.2 + 1240.5 = 1325.7 ms.
VLLM_EXPECTED = {"queue_s": 0.0123, "prefill_s": 0.0852, "decode_s": 1.2405, "time_per_token_s": 0.0091,
                 "busy_s": 1.3257, "total_s": None, "inference_s": None}


def test_vllm_metrics_body_and_final_usage_chunk() -> None:
    t = server_timing.parse({}, VLLM_BODY)
    assert t.format == sc.LLMOTEL_SERVER_TIMING_FORMAT_VLLM
    _approx(t, **VLLM_EXPECTED)
    _approx(server_timing.parse({}, VLLM_STREAM[-1]), **VLLM_EXPECTED)


@pytest.mark.parametrize("stream", [False, True])
def test_vllm_through_the_client(canned: openai.OpenAI, stream: bool) -> None:
    t = _read(canned, f"vllm-{stream}", {}, VLLM_STREAM if stream else VLLM_BODY)
    assert t.format == "vllm"
    _approx(t, **VLLM_EXPECTED)


def test_vllm_null_metrics_and_null_fields_are_nothing() -> None:
    # n > 1: the object is null; a field is null when its timestamps are missing (serving.py, same revision).
    assert server_timing.parse({}, {**VLLM_BODY, "metrics": None}).format == "none"
    t = server_timing.parse({}, {"metrics": {**VLLM_METRICS, "mean_itl_ms": None, "generation_time_ms": None}})
    _approx(t, prefill_s=0.0852, decode_s=None, time_per_token_s=None, busy_s=None)


def test_the_invented_vllm_keys_are_not_read() -> None:
    invented = {"prefill_time_ms": 30, "decode_time_ms": 200, "inference_time_ms": 230, "num_cached_tokens": 5}
    assert server_timing.parse({}, {"metrics": invented}).format == "none"


# ---- SGLang ------------------------------------------------------------------------------------------------
# Newest layout: sgl-project/sglang python/sglang/srt/observability/req_time_stats.py @ 00ce49e05c17
# (SchedulerReqTimeStats.convert_to_output_meta_info, APIServerReqTimeStats.convert_to_output_meta_info) and
# managers/tokenizer_manager.py @ 001067fffe33 (_handle_batch_output: id, finish_reason, prompt_tokens,
# weight_version, num_retractions; e2e_latency on the finished chunk). Seconds; *_time / *_ts are epoch s.
SGLANG_META = {
    "id": "9f1c", "finish_reason": {"type": "stop", "matched": 151645}, "prompt_tokens": 12,
    "weight_version": "ckpt-step-1200", "num_retractions": 0,
    "forward_entry_time": 1781202801.104, "prefill_finished_time": 1781202801.150, "queue_time": 0.0031,
    "prefill_waiting_latency": None, "prefill_launch_latency": None,
    "reasoning_tokens": 0, "completion_tokens": 2, "cached_tokens": 0,
    "e2e_latency": 0.0812, "request_received_ts": 1781202801.101, "api_server_dispatch_finish_ts": 1781202801.1005,
    "response_sent_to_client_ts": 1781202801.151, "request_finished_ts": 1781202801.182,
    "inference_time": 0.078, "decode_throughput": 62.5,
}
# The 2025 layout (tokenizer_manager.py _calculate_timing_metrics; /work/notes/server_formats.md section 2).
SGLANG_META_2025 = {
    "id": "9f1c", "finish_reason": {"type": "stop", "matched": 151645}, "prompt_tokens": 12,
    "weight_version": "default", "total_retractions": 0, "queue_time": 0.0031, "completion_tokens": 2,
    "cached_tokens": 0, "e2e_latency": 0.0812, "request_received_ts": 1781202801.101,
    "request_sent_to_scheduler_ts": 1781202801.104, "prefill_finished_ts": 1781202801.150,
    "response_sent_to_client_ts": 1781202801.151, "decode_finished_ts": 1781202801.182,
    "inference_time": 0.071, "decode_throughput": 64.5,
}


def test_sglang_meta_info_newest_layout() -> None:
    t = server_timing.parse({}, {"text": "Hi", "output_ids": [13048], "meta_info": SGLANG_META})
    assert t.format == sc.LLMOTEL_SERVER_TIMING_FORMAT_SGLANG and t.revision == "ckpt-step-1200"
    # prefill = prefill_finished_time - forward_entry_time = .150 - .104 = 46 ms (epoch floats: 1e-6 slack)
    assert t.prefill_s == pytest.approx(0.046, abs=1e-6)
    _approx(t, queue_s=0.0031, inference_s=0.078, busy_s=0.078, total_s=0.0812, decode_s=None)


def test_sglang_meta_info_2025_layout() -> None:
    t = server_timing.parse({}, {"text": "Hi", "output_ids": [13048], "meta_info": SGLANG_META_2025})
    assert (t.format, t.revision) == ("sglang", "default")
    # decode = decode_finished_ts - prefill_finished_ts = .182 - .150 = 32 ms; no prefill stamp pair.
    assert t.decode_s == pytest.approx(0.032, abs=1e-6)
    _approx(t, queue_s=0.0031, inference_s=0.071, busy_s=0.071, total_s=0.0812, prefill_s=None)


def test_sglang_without_metrics_reports_its_e2e_latency_only() -> None:
    # Without --enable-metrics the finished meta_info still has e2e_latency (tokenizer_manager.py, same revision).
    meta = {"id": "9f1c", "finish_reason": {"type": "length"}, "prompt_tokens": 3, "weight_version": "default",
            "num_retractions": 0, "reasoning_tokens": 0, "completion_tokens": 4, "cached_tokens": 0,
            "e2e_latency": 0.25}
    t = server_timing.parse({}, {"meta_info": meta})
    _approx(t, total_s=0.25, busy_s=None, queue_s=None)


def test_sglang_openai_compatible_body_gives_the_revision_through_the_client(canned: openai.OpenAI) -> None:
    # entrypoints/openai/serving_chat.py _build_chat_response: metadata={"weight_version": ...}, no timing.
    body = {"id": "9f1c", "object": "chat.completion", "created": 1781202801, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "logprobs": None,
                         "finish_reason": "stop", "matched_stop": 151645}],
            "usage": {"prompt_tokens": 12, "total_tokens": 14, "completion_tokens": 2}, "metadata": {"weight_version":
                                                                                                     "default"}}
    t = _read(canned, "sglang-openai", {}, body)
    assert (t.format, t.revision) == ("none", "default")


# ---- Groq --------------------------------------------------------------------------------------------------
# groq/groq-python @ 9620fde0bc57 (v1.6.0): src/groq/types/completion_usage.py (queue_time, prompt_time,
# completion_time, total_time: seconds; total = prompt + completion), types/chat/chat_completion_chunk.py
# (x_groq.usage only on the final chunk). Non-streaming x_groq.usage is XGroqUsage (cache counts, no timing).
GROQ_TIMES = {"queue_time": 0.090321431, "prompt_tokens": 38, "prompt_time": 0.003210785, "completion_tokens": 4,
              "completion_time": 0.027554055, "total_tokens": 42, "total_time": 0.03076484}
_GROQ = {"id": "chatcmpl-1", "created": 1769093744, "model": "llama-3.3-70b-versatile",
         "system_fingerprint": "fp_c06d5113ec"}
GROQ_BODY = {**_GROQ, "object": "chat.completion",
             "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "logprobs": None,
                          "finish_reason": "stop"}],
             "usage": GROQ_TIMES, "x_groq": {"id": "req_01kfk38ha1ey6bw3b68mcaeddg",
                                             "usage": {"dram_cached_tokens": 0, "sram_cached_tokens": 0}}}
GROQ_STREAM = [
    {**_GROQ, "object": "chat.completion.chunk", "x_groq": {"id": "req_01kfk38ha1ey6bw3b68mcaeddg"},
     "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}, "logprobs": None,
                  "finish_reason": None}]},
    {**_GROQ, "object": "chat.completion.chunk",
     "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}],
     "x_groq": {"id": "req_01kfk38ha1ey6bw3b68mcaeddg", "usage": GROQ_TIMES}},
]
# busy = total_time = 3.210785 + 27.554055 ms; queue reported apart.
GROQ_EXPECTED = {"queue_s": 0.090321431, "prefill_s": 0.003210785, "decode_s": 0.027554055, "busy_s": 0.03076484,
                 "total_s": None}


@pytest.mark.parametrize("stream", [False, True])
def test_groq_usage_and_x_groq_usage(canned: openai.OpenAI, stream: bool) -> None:
    body = GROQ_STREAM if stream else GROQ_BODY
    _approx(server_timing.parse({}, body[-1] if stream else body), **GROQ_EXPECTED)  # type: ignore[index]
    t = _read(canned, f"groq-{stream}", {}, body)
    assert t.format == sc.LLMOTEL_SERVER_TIMING_FORMAT_GROQ
    _approx(t, **GROQ_EXPECTED)


def test_a_content_chunk_is_never_read_for_timing() -> None:
    from openai.types.chat import ChatCompletionChunk

    r = LLMResponse()
    read_chat_chunk(ChatCompletionChunk.model_validate(GROQ_STREAM[0]), r)  # x_groq.id on the first chunk
    assert r.body_timing == {}


# ---- Cerebras ----------------------------------------------------------------------------------------------
# Cerebras/cerebras-cloud-sdk-python @ bebb8d13ac72 (1.67.0) src/cerebras/cloud/sdk/types/chat/chat_completion.py
# (time_info: queue_time, prompt_time, completion_time, total_time, seconds; "created" is an extra key in the
# docs example). Stream: time_info rides with usage on the final chunk (optional on every chunk in the SDK).
CEREBRAS_TIME = {"queue_time": 0.000073161, "prompt_time": 0.0010744798888888889,
                 "completion_time": 0.005658071111111111, "total_time": 0.022224903106689453, "created": 1723733419}
_CEREBRAS = {"id": "chatcmpl-292e278f", "created": 1723733419, "model": "gpt-oss-120b",
             "system_fingerprint": "fp_70185065a4"}
CEREBRAS_USAGE = {"prompt_tokens": 12, "completion_tokens": 10, "total_tokens": 22,
                  "prompt_tokens_details": {"cached_tokens": 0},
                  "completion_tokens_details": {"accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
CEREBRAS_BODY = {**_CEREBRAS, "object": "chat.completion",
                 "choices": [{"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": "Hello!"}}],
                 "usage": CEREBRAS_USAGE, "time_info": CEREBRAS_TIME}
CEREBRAS_STREAM = [
    {**_CEREBRAS, "object": "chat.completion.chunk",
     "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hello!"}}]},
    {**_CEREBRAS, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
     "usage": CEREBRAS_USAGE, "time_info": CEREBRAS_TIME},
]
# busy = prompt + completion = 1.07448 + 5.65807 ms; total_time (22.2 ms) holds other overhead too.
CEREBRAS_EXPECTED = {"queue_s": 0.000073161, "prefill_s": 0.0010744798888888889,
                     "decode_s": 0.005658071111111111, "total_s": 0.022224903106689453,
                     "busy_s": 0.0010744798888888889 + 0.005658071111111111}


@pytest.mark.parametrize("stream", [False, True])
def test_cerebras_time_info(canned: openai.OpenAI, stream: bool) -> None:
    t = _read(canned, f"cerebras-{stream}", {}, CEREBRAS_STREAM if stream else CEREBRAS_BODY)
    assert t.format == sc.LLMOTEL_SERVER_TIMING_FORMAT_CEREBRAS
    _approx(t, **CEREBRAS_EXPECTED)


# ---- TGI ---------------------------------------------------------------------------------------------------
# huggingface/text-generation-inference @ db931fcf42da (v3.3.7 + 1) router/src/server.rs generate_internal /
# chat_completions: non-streaming responses only; integer ms (Duration::as_millis), x-compute-time seconds.
TGI_HEADERS = {"x-compute-type": "1-nvidia-a10g", "x-compute-time": "0.512345678", "x-compute-characters": "57",
               "x-total-time": "512", "x-validation-time": "2", "x-queue-time": "0", "x-inference-time": "509",
               "x-time-per-token": "15", "x-prompt-tokens": "14", "x-generated-tokens": "32"}
TGI_BODY = {"object": "chat.completion", "id": "", "created": 1781202801, "model": "m",
            "system_fingerprint": "3.3.7-native",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "logprobs": None,
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 14, "completion_tokens": 32, "total_tokens": 46}}


def test_tgi_headers_through_the_client(canned: openai.OpenAI) -> None:
    t = _read(canned, "tgi", TGI_HEADERS, TGI_BODY)
    assert t.format == sc.LLMOTEL_SERVER_TIMING_FORMAT_TGI
    # x-inference-time = batch entry -> end (prefill + all decoding); x-time-per-token (prefill included) unread.
    _approx(t, queue_s=0.0, inference_s=0.509, busy_s=0.509, total_s=0.512, prefill_s=None, time_per_token_s=None)


def test_tgi_headers() -> None:
    t = server_timing.parse({"x-queue-time": "120", "x-inference-time": "800", "x-total-time": "950"}, {})
    assert t.format == "tgi"
    assert t.queue_s == pytest.approx(0.12) and t.inference_s == pytest.approx(0.8) and t.total_s == pytest.approx(0.95)
    assert t.prefill_s is None and t.time_per_token_s is None  # TGI does not split; never guessed here


# ---- llama.cpp ---------------------------------------------------------------------------------------------
# ggml-org/llama.cpp@0c1e570 (bundled in llama-cpp-python 0.3.36) tools/server/server-common.cpp
# server_slot_stats::to_json; server-task.cpp puts "timings" on the body and on the last stream chunk (the
# usage chunk with include_usage). predicted_per_token_ms = predicted_ms / (predicted_n - 1) = 238.74 / 24.
LLAMA_TIMINGS = {"cache_n": 60, "prompt_n": 8, "prompt_ms": 43.237, "prompt_per_token_ms": 5.404625,
                 "prompt_per_second": 185.0267, "predicted_n": 25, "predicted_ms": 238.74,
                 "predicted_per_token_ms": 9.9475, "predicted_per_second": 100.528}
LLAMA_USAGE = {"completion_tokens": 25, "prompt_tokens": 68, "total_tokens": 93,
               "prompt_tokens_details": {"cached_tokens": 60}}
_LLAMA = {"created": 1781202801, "id": "chatcmpl-VdRN", "model": "m.gguf", "system_fingerprint": "b1-0c1e570"}
LLAMA_BODY = {"choices": [{"finish_reason": "stop", "index": 0, "message": {"role": "assistant", "content": "Hi"}}],
              **_LLAMA, "object": "chat.completion", "usage": LLAMA_USAGE, "timings": LLAMA_TIMINGS}
LLAMA_STREAM = [
    {"choices": [{"finish_reason": None, "index": 0, "delta": {"content": "Hi"}}], **_LLAMA,
     "object": "chat.completion.chunk"},
    {"choices": [{"finish_reason": "stop", "index": 0, "delta": {}}], **_LLAMA, "object": "chat.completion.chunk"},
    {"choices": [], **_LLAMA, "object": "chat.completion.chunk", "usage": LLAMA_USAGE, "timings": LLAMA_TIMINGS},
]
# prefill = prompt_ms (slot start -> first sampled token), decode = predicted_ms (first -> last token),
# busy = 43.237 + 238.74 = 281.977 ms. No queue.
LLAMA_EXPECTED = {"prefill_s": 0.043237, "decode_s": 0.23874, "time_per_token_s": 0.0099475, "busy_s": 0.281977,
                  "queue_s": None, "total_s": None}


@pytest.mark.parametrize("stream", [False, True])
def test_llama_cpp_timings(canned: openai.OpenAI, stream: bool) -> None:
    t = _read(canned, f"llama-{stream}", {}, LLAMA_STREAM if stream else LLAMA_BODY)
    assert t.format == sc.LLMOTEL_SERVER_TIMING_FORMAT_LLAMA_CPP and t.cached_tokens == 60
    _approx(t, **LLAMA_EXPECTED)


def test_llama_cpp_body() -> None:
    t = server_timing.parse({}, {"timings": {"prompt_ms": 40.0, "predicted_ms": 500.0, "cache_n": 64}})
    assert (t.format, t.prefill_s, t.decode_s, t.cached_tokens) == ("llama_cpp", 0.04, 0.5, 64)


# ---- OpenAI, none, malformed -------------------------------------------------------------------------------
# OpenAI API reference, "Debugging requests": openai-processing-ms, integer ms, "time taken processing your API
# request" (no finer definition published): an upper bound of server time, never a busy time.


def test_openai_processing_ms_through_the_client(canned: openai.OpenAI) -> None:
    t = _read(canned, "openai", {"openai-processing-ms": "250", "openai-version": "2020-10-01"},
              {**TGI_BODY, "system_fingerprint": "fp_1"})
    assert t.format == sc.LLMOTEL_SERVER_TIMING_FORMAT_OPENAI_PROCESSING_MS
    _approx(t, total_s=0.25, busy_s=None, queue_s=None)


def test_openai_processing_ms_and_none_and_malformed() -> None:
    assert server_timing.parse({"openai-processing-ms": "250"}, {}).total_s == pytest.approx(0.25)
    assert server_timing.parse({}, {}).format == "none"
    bad = server_timing.parse({"x-queue-time": "NaN", "openai-processing-ms": "-3"}, {"timings": "oops"})
    assert bad.format == "none"
    assert server_timing.parse({"x-queue-time": "abc"}, {"metrics": {"queue_time_ms": [1]}}).format == "none"
    assert server_timing.parse({}, {"x_groq": "oops", "time_info": [1], "meta_info": {"weight_version": 3}}) \
        == ServerTiming()
    # SGLang stamps out of order are not a duration.
    t = server_timing.parse({}, {"meta_info": {"forward_entry_time": 2.0, "prefill_finished_time": 1.0}})
    assert t.format == "none"


def test_every_format_has_a_registry_name() -> None:
    assert {f.name for f in server_timing.FORMATS} | {"none"} == {
        sc.LLMOTEL_SERVER_TIMING_FORMAT_TGI,
        sc.LLMOTEL_SERVER_TIMING_FORMAT_LLAMA_CPP,
        sc.LLMOTEL_SERVER_TIMING_FORMAT_VLLM,
        sc.LLMOTEL_SERVER_TIMING_FORMAT_SGLANG,
        sc.LLMOTEL_SERVER_TIMING_FORMAT_GROQ,
        sc.LLMOTEL_SERVER_TIMING_FORMAT_CEREBRAS,
        sc.LLMOTEL_SERVER_TIMING_FORMAT_OPENAI_PROCESSING_MS,
        sc.LLMOTEL_SERVER_TIMING_FORMAT_NONE,
    }


def test_body_keys_are_the_top_level_objects_the_provider_copies() -> None:
    assert set(server_timing.BODY_KEYS) == {"timings", "metrics", "meta_info", "x_groq", "time_info", "metadata"}
    assert server_timing.USAGE_KEY not in server_timing.BODY_KEYS
