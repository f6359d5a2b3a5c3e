"""Energy attributes on real spans: the real openai client over loopback HTTP against the fleet simulator."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from openai import OpenAI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from _otel import instrumented
from llmotel import _semconv as sc
from llmotel.energy import config as energy_config
from llmotel.energy import estimator
from llmotel.energy import reference as energy_data
from llmotel.providers.openai import OpenAIInstrumentor
from llmotel.record import Usage
from llmotel_sim import SimServer

MSGS = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "energy?"}]
ENERGY_KEYS = (sc.LLMOTEL_ENERGY_WH, sc.LLMOTEL_ENERGY_WH_MIN, sc.LLMOTEL_ENERGY_WH_MAX, sc.LLMOTEL_CARBON_GCO2E)


@pytest.fixture
def exporter(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    monkeypatch.delenv(energy_config.ENV_VAR, raising=False)
    estimator.reload()
    with instrumented(OpenAIInstrumentor) as otel:
        yield otel.exporter


def _call_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    gc.collect()
    calls = [s for s in exporter.get_finished_spans() if s.parent is None]
    assert len(calls) == 1, [s.name for s in calls]
    return calls[0]


def _client(sim: SimServer) -> OpenAI:
    return OpenAI(base_url=sim.base_url + "/v1", api_key="tenant-energy")


@pytest.mark.parametrize("sim_region", ["us-east-1", "eu-west-1"])
def test_call_span_carries_energy_and_carbon_for_the_serving_region(
    sim: SimServer, exporter: InMemorySpanExporter, sim_region: str
) -> None:
    raw = _client(sim).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSGS, extra_headers={"x-sim-output-tokens": "40", "x-sim-region": sim_region}
    )
    raw.parse()
    a = _call_span(exporter).attributes
    assert a is not None
    served = energy_data.grid_table().find(raw.headers["x-ms-region"])  # what the server said, looked up
    assert served is not None
    assert a[sc.LLMOTEL_ENERGY_GRID_INTENSITY_REGION] == served.region
    assert a[sc.LLMOTEL_ENERGY_GRID_INTENSITY] == served.gco2e_per_kwh
    assert a[sc.LLMOTEL_ENERGY_PUE] == estimator.PROVIDER_PUE["azure"]
    assert a[sc.LLMOTEL_ENERGY_MODEL_SIZE_SOURCE] == "undisclosed"  # hosted GPT sizes are not published
    assert 0 < a[sc.LLMOTEL_ENERGY_WH_MIN] < a[sc.LLMOTEL_ENERGY_WH] < a[sc.LLMOTEL_ENERGY_WH_MAX]
    assert a[sc.LLMOTEL_CARBON_GCO2E] == pytest.approx(a[sc.LLMOTEL_ENERGY_WH] * served.gco2e_per_kwh / 1000)
    assert a[sc.LLMOTEL_CARBON_GCO2E_MAX] == pytest.approx(a[sc.LLMOTEL_ENERGY_WH_MAX] * served.gco2e_per_kwh / 1000)
    assert a[sc.LLMOTEL_ENERGY_METHOD] == estimator.METHOD
    assert a[sc.LLMOTEL_ENERGY_SOURCE] == "estimated"


def test_open_model_gets_a_point_value_that_grows_with_output(sim: SimServer, exporter: InMemorySpanExporter) -> None:
    client = _client(sim)
    values = []
    for output_tokens in ("10", "200"):
        client.chat.completions.create(
            model="meta-llama/Llama-3.1-8B-Instruct",
            messages=MSGS,
            extra_headers={"x-sim-output-tokens": output_tokens},
        )
        a = _call_span(exporter).attributes
        assert a is not None
        exporter.clear()
        assert a[sc.LLMOTEL_ENERGY_MODEL_SIZE_SOURCE] == "table"
        assert a[sc.LLMOTEL_ENERGY_WH_MIN] == a[sc.LLMOTEL_ENERGY_WH] == a[sc.LLMOTEL_ENERGY_WH_MAX]
        usage = Usage(
            input_tokens=int(a[sc.GEN_AI_USAGE_INPUT_TOKENS]),  # type: ignore[arg-type]
            output_tokens=int(a[sc.GEN_AI_USAGE_OUTPUT_TOKENS]),  # type: ignore[arg-type]
            cache_read_tokens=int(a.get(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, 0)),  # type: ignore[arg-type]
        )
        # The decode term alone is a floor for what the span says (prefill, server share and PUE only add).
        floor = usage.output_tokens * estimator.decode_wh_per_token(8.03, 8.03)  # type: ignore[operator]
        assert a[sc.LLMOTEL_ENERGY_WH] > floor
        values.append(a[sc.LLMOTEL_ENERGY_WH])
    assert values[1] > values[0]


def test_stream_without_token_counts_has_no_energy_attributes(sim: SimServer, exporter: InMemorySpanExporter) -> None:
    stream = _client(sim).chat.completions.create(
        model="gpt-4o-mini", messages=MSGS, stream=True, extra_headers={"x-sim-output-tokens": "12"}
    )
    for _ in stream:
        pass
    a = _call_span(exporter).attributes
    assert a is not None
    if sc.GEN_AI_USAGE_INPUT_TOKENS in a:
        pytest.skip("the provider module estimated input tokens for this stream")
    assert not any(key in a for key in ENERGY_KEYS)
