"""energy.estimate: contract (None / ranges / never raises), lookups, overrides, shipped data hygiene."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmotel.energy import config as energy_config
from llmotel.energy import estimator
from llmotel.energy import reference as energy_data
from llmotel.record import EnergyEstimate, Usage

CALL = Usage(input_tokens=1000, output_tokens=200)


@pytest.fixture(autouse=True)
def _no_user_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(energy_config.ENV_VAR, raising=False)
    estimator.reload()
    yield
    estimator.reload(energy_config.EMPTY)


def _est(model: str, region: str = "FR", usage: Usage = CALL, server_s: float | None = None) -> EnergyEstimate:
    result = estimator.estimate(model, region, usage, server_s)
    assert result is not None
    return result


# --- contract -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "usage",
    [Usage(), Usage(input_tokens=10), Usage(output_tokens=10), Usage(input_tokens=-1, output_tokens=5)],
)
def test_missing_or_invalid_token_counts_give_none(usage: Usage) -> None:
    assert estimator.estimate("llama-3.1-8b", "FR", usage, 1.0) is None


def test_known_model_is_a_point_value_from_the_table() -> None:
    est = _est("meta-llama/Llama-3.1-8B-Instruct")
    assert est.model_size_source == "table"
    assert est.wh_min == est.wh == est.wh_max > 0
    assert est.method == estimator.METHOD
    assert est.source == "estimated"


def test_unknown_model_is_the_widest_range_never_a_point() -> None:
    est = _est("zzz-model-nobody-knows")
    assert est.model_size_source == "unknown"
    assert est.wh_min < est.wh < est.wh_max
    # The widest range spans every shipped model: a 1B model's energy is at or above its low end, GPT-4's below its top.
    assert est.wh_min <= _est("llama-3.2-1b").wh
    assert _est("gpt-4").wh_max <= est.wh_max


def test_unknown_member_of_a_known_family_gets_the_family_range() -> None:
    est = _est("llama-9.9-experimental")
    assert est.model_size_source == "family"
    assert est.wh_min < est.wh_max
    assert _est("llama-3.2-1b").wh == pytest.approx(est.wh_min)
    assert _est("llama-3.1-405b").wh == pytest.approx(est.wh_max)


def test_proprietary_models_are_labelled_undisclosed_with_a_range() -> None:
    for model in ("gpt-4o-2024-08-06", "claude-sonnet-4-5-20250929", "gemini-2.5-pro", "o3-mini"):
        est = _est(model)
        assert est.model_size_source == "undisclosed", model
        assert est.wh_min < est.wh_max


def test_size_read_from_the_model_name_when_not_in_the_table() -> None:
    dense = _est("acme/foo-13b-chat")
    assert dense.model_size_source == "name"
    assert dense.wh_min == dense.wh_max
    moe = _est("acme-200b-a10b")
    assert moe.model_size_source == "name"
    assert moe.wh < _est("acme-200b").wh  # fewer active parameters per token


def test_range_orders_and_carbon_follows_energy() -> None:
    est = _est("mistral-large-latest", region="DE")
    assert est.wh_min <= est.wh <= est.wh_max
    assert est.grid_intensity is not None and est.gco2e is not None
    assert est.gco2e == pytest.approx(est.wh * est.grid_intensity / 1000)
    assert est.gco2e_min == pytest.approx(est.wh_min * est.grid_intensity / 1000)
    assert est.gco2e_max == pytest.approx(est.wh_max * est.grid_intensity / 1000)


def test_cache_reads_skip_prefill_and_more_output_costs_more() -> None:
    cold = _est("llama-3.1-70b", usage=Usage(input_tokens=10_000, output_tokens=100), server_s=2.0)
    warm = _est(
        "llama-3.1-70b", usage=Usage(input_tokens=10_000, output_tokens=100, cache_read_tokens=9_000), server_s=2.0
    )
    longer = _est("llama-3.1-70b", usage=Usage(input_tokens=10_000, output_tokens=1000), server_s=2.0)
    assert warm.wh < cold.wh < longer.wh
    prefill_9000 = 9000 * estimator.prefill_wh_per_token(70.6) * cold.pue
    assert cold.wh - warm.wh == pytest.approx(prefill_9000)


def test_server_time_drives_the_server_share() -> None:
    short = _est("llama-3.1-8b", server_s=1.0)
    long = _est("llama-3.1-8b", server_s=11.0)
    gpus = estimator.gpu_count(8.03)
    expected = 10.0 * estimator.SERVER_POWER_W / 3600 * gpus / estimator.SERVER_GPUS / estimator.DEFAULT_BATCH_SIZE
    assert long.wh - short.wh == pytest.approx(expected * short.pue)


@pytest.mark.parametrize(
    ("model", "source", "total_b"),
    [
        ("meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo", "table", 70.6),  # Together
        ("llama3.1:8b", "table", 8.03),  # Ollama
        ("@cf/meta/llama-3.1-8b-instruct", "table", 8.03),  # Cloudflare Workers AI
        ("llama-3.3-70b-versatile", "table", 70.6),  # Groq
        ("meta-llama/llama-3.1-405b-instruct:free", "table", 405),  # OpenRouter
        ("Qwen/Qwen2.5-72B-Instruct", "table", 72.7),
        ("mistralai/Mixtral-8x7B-Instruct-v0.1", "table", 46.7),
        ("deepseek-ai/DeepSeek-R1-Distill-Llama-70B", "table", 70.6),
        ("meta.llama3-1-70b-instruct-v1:0", "name", 70),  # Bedrock spelling: the size comes from the name
        ("accounts/fireworks/models/llama-v3p1-8b-instruct", "name", 8),
        ("us.anthropic.claude-3-5-sonnet-20241022-v2:0", "undisclosed", 2000),
        ("publishers/google/models/gemini-2.0-flash", "undisclosed", 2000),
    ],
)
def test_provider_spellings_resolve(model: str, source: str, total_b: float) -> None:
    size, found = estimator._get_state()._resolve_size(model)
    assert (found, size.total_max) == (source, total_b)


@pytest.mark.parametrize(
    ("total_b", "gpus"), [(1, 1), (8.03, 1), (33, 1), (34, 2), (70.6, 4), (405, 16), (671, 32), (1800, 64)]
)
def test_gpu_count_is_a_power_of_two_that_holds_16_bit_weights(total_b: float, gpus: int) -> None:
    assert estimator.gpu_count(total_b) == gpus


# --- regions --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "label", "pue"),
    [
        ("us-east-1", "us-east-1", 1.135),
        ("europe-west1", "europe-west1", 1.1),
        ("East US", "eastus", 1.125),
        ("FR", "FR", estimator.DEFAULT_PUE),
        ("france", "FR", estimator.DEFAULT_PUE),
        ("eu", "EU", estimator.DEFAULT_PUE),
        ("uk", "GB", estimator.DEFAULT_PUE),
        ("global", "world", estimator.DEFAULT_PUE),
    ],
)
def test_region_lookup(region: str, label: str, pue: float) -> None:
    est = _est("llama-3.1-8b", region=region)
    assert est.grid_region == label
    assert est.pue == pue
    assert est.grid_intensity is not None and 0 <= est.grid_intensity < 1500


@pytest.mark.parametrize("region", ["", "FRA", "mars-north-1"])
def test_unknown_region_uses_the_world_average_labelled_world(region: str) -> None:
    est = _est("llama-3.1-8b", region=region)
    assert est.grid_region == energy_data.WORLD
    assert est.grid_intensity == energy_data.grid_table().world.gco2e_per_kwh


def test_grid_intensity_is_the_shipped_yearly_average() -> None:
    assert _est("llama-3.1-8b", region="FR").grid_intensity == pytest.approx(44.2)
    assert _est("llama-3.1-8b", region="us-east-1").grid_intensity == pytest.approx(379.07)


# --- never raises ---------------------------------------------------------------------------------------------

_counts = st.one_of(st.none(), st.integers(min_value=-5, max_value=10**9))


@settings(max_examples=300, deadline=None)
@given(
    model=st.text(max_size=80),
    region=st.text(max_size=40),
    usage=st.builds(Usage, input_tokens=_counts, output_tokens=_counts, cache_read_tokens=_counts),
    server_s=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
)
def test_never_raises_and_ranges_are_ordered(model: str, region: str, usage: Usage, server_s: float | None) -> None:
    est = estimator.estimate(model, region, usage, server_s)
    if est is None:
        return
    assert 0 <= est.wh_min <= est.wh <= est.wh_max < math.inf
    assert est.grid_region


def test_internal_failure_is_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(estimator, "_estimate", boom)
    assert estimator.estimate("llama-3.1-8b", "FR", CALL, 1.0) is None


# --- user overrides -------------------------------------------------------------------------------------------


def _write(tmp_path: Path, content: object, name: str = "energy.json") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def test_override_file_adds_models_and_regions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(
        tmp_path,
        {
            "models": {"acme-private": {"total_b": [50, 200], "active_b": [10, 40], "source": "vendor sheet"}},
            "regions": {"onprem-paris": {"gco2e_per_kwh": 52, "pue": 1.4}},
            "batch_size": 32,
        },
    )
    monkeypatch.setenv(energy_config.ENV_VAR, str(path))
    estimator.reload()
    est = _est("acme-private", region="onprem-paris")
    assert est.model_size_source == "override"
    assert est.wh_min < est.wh < est.wh_max
    assert (est.grid_intensity, est.grid_region, est.pue) == (52, "onprem-paris", 1.4)


def test_override_beats_the_shipped_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = _est("llama-3.1-70b")
    monkeypatch.setenv(energy_config.ENV_VAR, str(_write(tmp_path, {"models": {"llama-3.1-70b": {"total_b": 8}}})))
    estimator.reload()
    overridden = _est("llama-3.1-70b")
    assert overridden.model_size_source == "override"
    assert overridden.wh < shipped.wh


def test_default_region_applies_when_the_call_region_is_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(energy_config.ENV_VAR, str(_write(tmp_path, {"region": "SE", "pue": 1.05})))
    estimator.reload()
    assert _est("llama-3.1-8b", region="").grid_region == "SE"
    assert _est("llama-3.1-8b", region="nowhere").grid_region == "SE"
    known = _est("llama-3.1-8b", region="FR")
    assert (known.grid_region, known.pue) == ("FR", 1.05)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ({"models": {"m": {"active_b": 3}}}, "models.m.total_b is required"),
        ({"models": {"m": {"total_b": "big"}}}, "models.m.total_b must be billions of parameters"),
        ({"models": {"m": {"total_b": 10, "active_b": 20}}}, "active_b"),
        ({"models": {"m": {"total_b": [9, 3]}}}, "write [min, max]"),
        ({"regions": {"r": {"gco2e_per_kwh": -3}}}, "regions.r.gco2e_per_kwh must be a number in [0, 2000]"),
        ({"regions": {"r": {}}}, "regions.r: give gco2e_per_kwh"),
        ({"pue": 0.5}, "pue must be a number in [1, 3]"),
        ({"modles": {}}, "unknown key 'modles'"),
        ([1, 2], "the top level must be an object"),
        ("{not json", "not valid JSON at line 1"),
    ],
)
def test_bad_file_names_the_key_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, content: object, needle: str
) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(energy_config.EnergyConfigError) as excinfo:
        energy_config.load(path)
    assert needle in str(excinfo.value)
    # At call time the same file never breaks anything: a warning, then the shipped data.
    monkeypatch.setenv(energy_config.ENV_VAR, str(path))
    with caplog.at_level(logging.WARNING, logger="llmotel.energy_config"):
        estimator.reload()
    assert needle in caplog.text
    assert _est("llama-3.1-8b").model_size_source == "table"


def test_bad_entries_are_skipped_good_ones_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, {"models": {"good-model": {"total_b": 3}, "bad-model": {"total_b": -1}}})
    monkeypatch.setenv(energy_config.ENV_VAR, str(path))
    estimator.reload()
    assert _est("good-model").model_size_source == "override"
    assert _est("bad-model").model_size_source == "unknown"


def test_missing_file_and_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(energy_config.EnergyConfigError, match="cannot read the energy config"):
        energy_config.load(tmp_path / "absent.json")
    monkeypatch.setenv(energy_config.ENV_VAR, str(tmp_path / "absent.json"))
    estimator.reload()
    assert _est("llama-3.1-8b").model_size_source == "table"
    yaml_file = _write(tmp_path, "models:\n  acme-x:\n    total_b: 7\n", name="energy.yaml")
    assert energy_config.load(yaml_file).models[("acme", "x")].total_max == 7


def test_config_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert energy_config.main([str(_write(tmp_path, {"models": {"a": {"total_b": 1}}}))]) == 0
    assert energy_config.main([str(_write(tmp_path, {"pue": 9}, name="bad.json"))]) == 1
    assert "pue must be a number" in capsys.readouterr().err


# --- shipped data hygiene -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "licence"),
    [
        ("model_sizes.csv", "Licence of this table: Apache-2.0"),
        ("grid_countries.csv", "Licence: CC BY 4.0"),
        ("grid_cloud_regions.csv", "Licence: Apache-2.0"),
    ],
)
def test_every_data_file_states_source_and_licence(filename: str, licence: str) -> None:
    text = resources.files("llmotel.energy.data").joinpath(filename).read_text(encoding="utf-8")
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert "Source" in header and licence in header
    assert "share-alike" not in header.lower() and "CC BY-SA" not in header


def test_every_model_row_is_valid_and_sourced() -> None:
    table = energy_data.model_table()
    assert table.widest.valid()
    for key, size in table.rows.items():
        assert size.valid(), key
        assert len(size.source) > 10, key
        if size.kind == "model":
            assert size.active_max <= size.total_max, key


def test_grid_rows_are_plausible() -> None:
    grid = energy_data.grid_table()
    assert 300 < grid.world.gco2e_per_kwh < 700
    assert len(grid.by_key) > 300
    for key, entry in grid.by_key.items():
        assert 0 <= entry.gco2e_per_kwh < 1500, key
        assert entry.source, key


def test_lookups_are_cached_and_bounded() -> None:
    state = estimator._get_state()
    for i in range(2000):
        estimator.estimate(f"model-{i}", f"region-{i}", CALL, 1.0)
    assert state.coeffs.cache_info().currsize <= 512
    assert state.grid.cache_info().currsize <= 256


def test_preload_parses_the_tables_ahead_of_the_first_call() -> None:
    energy_data.model_table.cache_clear()
    energy_data.grid_table.cache_clear()
    estimator.reload(energy_config.EMPTY)
    estimator.preload()
    assert energy_data.model_table.cache_info().currsize == 1
    assert energy_data.grid_table.cache_info().currsize == 1
