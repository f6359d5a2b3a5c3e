"""Acceptance: our per-output-token decode energy against published ML.ENERGY measurements and EcoLogits.

Published measurements (vLLM on NVIDIA H100 80GB, energy per output token, batch size = max_num_seqs = 64):

    model              GPUs   ML.ENERGY v2.0 (Sep 2024,    ML.ENERGY v3.0 (Dec 2025,
                              vLLM 0.5.4)                  vLLM 0.11.1)
    Llama-3.1-8B        1     0.20 J                       0.12 J
    Llama-3.1-70B       4     1.41 J                       0.80 J

Source: J.-W. Chung, "LLM Inference Energy: A Longitudinal Analysis", The ML.ENERGY blog, 2026-02-09
(https://ml.energy/blog/measurement/energy/llm-inference-energy-a-longitudinal-analysis/). The 8B figures are
stated in the text ("the 8B model on batch size 64 reduces energy per token by 41% (0.20 J to 0.12 J)"); the 70B
figures are read from the post's figure "Energy per output token vs. batch size for Llama 3.1 models on H100 GPUs"
(ml-energy/blog docs/posts/assets/llm-energy-over-time/llama-energy-per-token-light.svg @ b436eb5: the SVG's data
points mapped through its axis ticks give 1.409 J and 0.797 J; the same reading gives 0.2018 J and 0.1186 J for 8B,
matching the text).

Target (docs/energy.md): for decode, the published measurement's uncertainty is the spread between the two
published measurements of the same model, hardware and batch size (only the serving software changed), i.e. the
band [v3.0, v2.0]. Our per-output-token GPU decode energy must fall inside it, with 5 % slack for reading the
figure. EcoLogits (same fit, its own code) must agree with our decode-only call energy to 2 %.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from llmotel.energy import config as energy_config
from llmotel.energy import estimator
from llmotel.record import Usage

J_PER_WH = 3600.0
SLACK = 0.05

# (model, total/active params in billions, GPUs ML.ENERGY used, v3.0 J/token, v2.0 J/token)
MEASURED = [
    ("llama-3.1-8b", 8.03, 1, 0.12, 0.20),
    ("llama-3.1-70b", 70.6, 4, 0.797, 1.409),
]


@pytest.fixture(autouse=True)
def _pue_one(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # ML.ENERGY measures GPU energy only and EcoLogits is compared at PUE 1: remove the facility overhead.
    monkeypatch.delenv(energy_config.ENV_VAR, raising=False)
    estimator.reload(energy_config.parse({"pue": 1.0}))
    yield
    estimator.reload(energy_config.EMPTY)


@pytest.mark.parametrize(("model", "params_b", "gpus", "v3_j", "v2_j"), MEASURED)
def test_decode_per_token_within_published_measurements(
    model: str, params_b: float, gpus: int, v3_j: float, v2_j: float
) -> None:
    assert estimator.gpu_count(params_b) == gpus  # same deployment as the measurement
    ours_j = estimator.decode_wh_per_token(params_b, params_b, batch_size=64) * J_PER_WH
    print(
        f"\n{model} @ H100, batch 64: ours {ours_j:.3f} J/token;"
        f" ML.ENERGY v3.0 {v3_j:.3f} J (ratio {ours_j / v3_j:.2f}), v2.0 {v2_j:.3f} J (ratio {ours_j / v2_j:.2f})"
    )
    assert v3_j * (1 - SLACK) <= ours_j <= v2_j * (1 + SLACK)


def _ecologits_wh(params_b: float, output_tokens: int) -> tuple[float, float]:
    """(request energy, GPU energy of all GPUs) in Wh from EcoLogits' own implementation, PUE 1."""
    llm = pytest.importorskip(
        "ecologits.impacts.llm", reason="ecologits is a dev-only dependency (pip install -e '.[dev]')"
    )
    dag = llm.compute_llm_impacts_dag(
        model_active_parameter_count=params_b,
        model_total_parameter_count=params_b,
        output_token_count=output_tokens,
        request_latency=math.inf,
        if_electricity_mix_adpe=0.0,
        if_electricity_mix_pe=0.0,
        if_electricity_mix_gwp=0.0,
        if_electricity_mix_wue=0.0,
        datacenter_pue=1.0,
        datacenter_wue=0.0,
    )
    return dag["request_energy"] * 1000.0, dag["gpu_energy"] * dag["gpu_required_count"] * 1000.0


@pytest.mark.parametrize(("model", "params_b", "gpus", "v3_j", "v2_j"), MEASURED)
def test_agrees_with_ecologits_on_a_decode_only_call(
    model: str, params_b: float, gpus: int, v3_j: float, v2_j: float
) -> None:
    out = 1000
    eco_total_wh, eco_gpu_wh = _ecologits_wh(params_b, out)
    ours = estimator.estimate(model, "FR", Usage(input_tokens=0, output_tokens=out), None)
    assert ours is not None and ours.pue == 1.0
    ours_gpu_wh = estimator.decode_wh_per_token(params_b, params_b) * out
    print(
        f"\n{model}, {out} output tokens, no prompt, PUE 1: ours {ours.wh * 1000:.2f} mWh, EcoLogits"
        f" {eco_total_wh * 1000:.2f} mWh (ratio {ours.wh / eco_total_wh:.3f}); GPU part per token ours"
        f" {ours_gpu_wh / out * J_PER_WH:.3f} J, EcoLogits {eco_gpu_wh / out * J_PER_WH:.3f} J"
        f" (ratio {ours_gpu_wh / eco_gpu_wh:.3f}); EcoLogits/ML.ENERGY v3.0 {eco_gpu_wh / out * J_PER_WH / v3_j:.2f}"
    )
    assert ours.wh == pytest.approx(eco_total_wh, rel=0.02)
    assert ours_gpu_wh == pytest.approx(eco_gpu_wh, rel=0.02)


def test_prefill_is_counted_where_ecologits_is_not() -> None:
    # A long-context agent turn: 20k prompt tokens, 300 output tokens. EcoLogits has no input-token term.
    eco_total_wh, _ = _ecologits_wh(70.6, 300)
    ours = estimator.estimate("llama-3.1-70b", "FR", Usage(input_tokens=20_000, output_tokens=300), None)
    assert ours is not None
    prefill_wh = 20_000 * estimator.prefill_wh_per_token(70.6)
    print(
        f"\nllama-3.1-70b, 20k in / 300 out: ours {ours.wh * 1000:.1f} mWh (of which prefill {prefill_wh * 1000:.1f}),"
        f" EcoLogits {eco_total_wh * 1000:.1f} mWh, ratio {ours.wh / eco_total_wh:.2f}"
    )
    assert ours.wh == pytest.approx(eco_total_wh + prefill_wh, rel=0.02)
