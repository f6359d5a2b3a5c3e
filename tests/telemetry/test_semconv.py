"""The registry is the single source of truth: stale generated files and unknown names fail CI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llmotel import _semconv

ROOT = Path(__file__).resolve().parents[2]
GENERATED = [
    "src/llmotel/_semconv.py",
    "collector/llmsliconnector/internal/semconv/generated_semconv.go",
    "docs/semconv.md",
]


@pytest.fixture()
def repo_copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "semconv", tmp_path / "semconv", ignore=shutil.ignore_patterns("__pycache__"))
    for rel in GENERATED:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    return tmp_path


def _generate(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(root / "semconv" / "generate.py"), *args], capture_output=True, text=True, check=False
    )


def test_checked_in_files_are_fresh() -> None:
    result = _generate(ROOT, "--check")
    assert result.returncode == 0, result.stderr


def test_renaming_an_attribute_without_regenerating_fails_then_regenerating_updates_all(repo_copy: Path) -> None:
    # Metrics name their dimensions by reference, so a rename is done wherever the attribute is named.
    for registry in (repo_copy / "semconv" / "registry").glob("*.yaml"):
        registry.write_text(registry.read_text().replace("llmotel.tenant.id", "llmotel.tenant.key"))

    stale = _generate(repo_copy, "--check")
    assert stale.returncode == 1
    for rel in GENERATED:
        assert rel in stale.stderr

    assert _generate(repo_copy).returncode == 0
    assert _generate(repo_copy, "--check").returncode == 0
    for rel in GENERATED:
        text = (repo_copy / rel).read_text()
        assert "llmotel.tenant.key" in text
        assert "llmotel.tenant.id" not in text


def test_unregistered_attribute_string_in_source_fails(repo_copy: Path) -> None:
    src = repo_copy / "src" / "llmotel"
    (src / "leaky.py").write_text('NAME = "llmotel.tenant.nickname"\nOK = "llmotel.tenant.id"\n')
    result = subprocess.run(
        [sys.executable, str(repo_copy / "semconv" / "check_usage.py")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "llmotel.tenant.nickname" in result.stderr
    assert "llmotel.tenant.id'" not in result.stderr


def test_python_literal_type_lists_every_attribute() -> None:
    literal_args = set(_semconv.AttributeName.__args__)  # type: ignore[attr-defined]
    assert literal_args == set(_semconv.ATTRIBUTE_NAMES)
    assert _semconv.LATEST_EXPERIMENTAL_RENAMES[_semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] == (
        _semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS
    )
