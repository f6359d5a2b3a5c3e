"""A bad llmotel variable is one warning naming the key, the value and the fix; that setting falls back to its
default and llmotel keeps instrumenting. A bad keyword option is the caller's bug and raises. The energy override
file is checked when settings are resolved, not at the first call."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmotel import config
from llmotel.energy import config as energy_config
from llmotel_sim import SimServer


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "_warned", set())


def test_bad_variable_warns_once_and_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    env = {"LLMOTEL_PHASE_SPANS": "bogus", "LLMOTEL_STALL_THRESHOLD_S": "5"}
    with caplog.at_level(logging.WARNING, logger="llmotel"):
        first = config.resolve(env=env, strict=False)
        second = config.resolve(env=env, strict=False)
    assert (first.phase_spans, first.stall_threshold_s) == ("direct", 5.0)  # the others are still read
    assert second == first
    (record,) = [r for r in caplog.records if r.name == "llmotel"]
    assert "LLMOTEL_PHASE_SPANS='bogus'" in record.getMessage()  # the key and the value
    assert "use direct (default) or tracer" in record.getMessage()  # the fix
    assert "using the default (direct)" in record.getMessage()


def test_strict_resolve_and_keyword_options_still_raise() -> None:
    with pytest.raises(config.ConfigError, match="LLMOTEL_PHASE_SPANS='bogus'"):
        config.resolve(env={"LLMOTEL_PHASE_SPANS": "bogus"})
    with pytest.raises(config.ConfigError, match="phase_spans='fast'"):
        config.override(config.resolve(env={}), {"phase_spans": "fast"})


def test_secret_value_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="llmotel"):
        config.resolve(env={"LLMOTEL_FINGERPRINT_KEY": "tooshort"}, strict=False)
    assert "LLMOTEL_FINGERPRINT_KEY" in caplog.text and "tooshort" not in caplog.text


def _write(tmp_path: Path, text: str, name: str = "energy.json") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_energy_file_is_checked_when_settings_are_resolved(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bad = _write(tmp_path, "{not json")
    with caplog.at_level(logging.WARNING):
        settings = config.resolve(env={"LLMOTEL_ENERGY_CONFIG": str(bad)}, strict=False)
        assert config.env_value("energy_config", {"LLMOTEL_ENERGY_CONFIG": str(bad)}) == ""
        assert energy_config.from_env({"LLMOTEL_ENERGY_CONFIG": str(bad)}) is energy_config.EMPTY
    assert settings.energy_config == ""  # the shipped data
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "LLMOTEL_ENERGY_CONFIG=" in warnings[0] and "not valid JSON at line 1" in warnings[0]
    assert "python -m llmotel.energy.config FILE" in warnings[0]


def test_energy_file_with_some_bad_entries_keeps_the_good_ones_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _write(tmp_path, json.dumps({"models": {"good": {"total_b": 3}, "bad": {"total_b": -1}}}))
    env = {"LLMOTEL_ENERGY_CONFIG": str(path)}
    with caplog.at_level(logging.WARNING):
        assert config.resolve(env=env, strict=False).energy_config == str(path)
        overrides = energy_config.from_env(env)
    assert ("good",) in overrides.models and ("bad",) not in overrides.models
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    assert "models.bad.total_b" in caplog.text


APP = """
import llmotel.auto
from opentelemetry import trace
from openai import OpenAI

client = OpenAI(base_url={base!r} + "/v1", api_key="k")
client.chat.completions.create(model="gpt-4o-mini", messages=[{{"role": "user", "content": "hi"}}],
                               extra_headers={{"x-sim-output-tokens": "3"}})
client.chat.completions.create(model="gpt-4o-mini", messages=[{{"role": "user", "content": "hi"}}], stream=True,
                               extra_headers={{"x-sim-output-tokens": "3"}}).close()
trace.get_tracer_provider().force_flush()
"""


def test_bad_settings_under_import_auto_keep_llmotel_working(sim: SimServer, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "LLMOTEL_PHASE_SPANS": "bogus",
        "LLMOTEL_ENERGY_CONFIG": str(_write(tmp_path, "{not json")),
    }
    out = subprocess.run(
        [sys.executable, "-c", APP.format(base=sim.base_url)], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 2, out.stderr  # one per bad setting, each once although two calls ran
    assert "LLMOTEL_PHASE_SPANS='bogus'" in lines[0] and "LLMOTEL_ENERGY_CONFIG=" in lines[1]
    assert out.stdout.count('"name": "chat gpt-4o-mini"') == 2  # both calls instrumented
    assert '"name": "decode"' in out.stdout
