"""Drift between the registry and any generated file fails the check (run: pytest semconv/test_generate.py).

Each test edits a copy of the repository's generated inputs, never the checkout itself.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GENERATED = [
    "src/llmotel/_semconv.py",
    "collector/llmsliconnector/internal/semconv/generated_semconv.go",
    "docs/semconv.md",
    "collector/llmsliconnector/documentation.md",
]
MDATAGEN_INPUTS = [
    "collector/mdatagen.sh",
    "collector/tools/go.mod",
    "collector/tools/go.sum",
    "collector/llmsliconnector/metadata.yaml",
    "collector/llmsliconnector/go.mod",
    "collector/llmsliconnector/go.sum",
    "collector/llmsliconnector/internal/metadata/generated_status.go",
    "collector/llmsliconnector/generated_component_test.go",
    "collector/llmsliconnector/generated_package_test.go",
]


def _copy(root: Path, rels: list[str]) -> None:
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, root / rel)


@pytest.fixture()
def repo_copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "semconv", tmp_path / "semconv", ignore=shutil.ignore_patterns("__pycache__"))
    _copy(tmp_path, GENERATED)
    return tmp_path


def _generate(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(root / "semconv" / "generate.py"), *args], capture_output=True, text=True, check=False
    )


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_checked_in_files_are_fresh() -> None:
    result = _generate(ROOT, "--check")
    assert result.returncode == 0, result.stderr


def test_changing_a_descriptor_in_the_registry_fails_until_regenerated(repo_copy: Path) -> None:
    registry = repo_copy / "semconv" / "registry" / "metrics.yaml"
    _edit(registry, 'description: "Time to first token of LLM calls."', 'description: "TTFT."')
    _edit(registry, "buckets: [0.05, 0.1, 0.25, 0.5, 0.75, 1, ", "buckets: [0.05, 0.1, 0.25, 0.5, 0.7, 1, ")

    stale = _generate(repo_copy, "--check")
    assert stale.returncode == 1
    for rel in ("src/llmotel/_semconv.py", "generated_semconv.go", "docs/semconv.md", "documentation.md"):
        assert rel in stale.stderr

    assert _generate(repo_copy).returncode == 0
    assert _generate(repo_copy, "--check").returncode == 0
    go = (repo_copy / GENERATED[1]).read_text()
    assert 'Description: "TTFT."' in go
    assert "{0.05, 0.1, 0.25, 0.5, 0.7, 1, 1.5," in go


def test_hand_editing_a_generated_descriptor_fails(repo_copy: Path) -> None:
    _edit(repo_copy / GENERATED[0], 'description="GenAI operation duration"', 'description="Call duration"')
    _edit(repo_copy / GENERATED[1], 'Unit:        "Wh",', 'Unit:        "kWh",')

    stale = _generate(repo_copy, "--check")
    assert stale.returncode == 1
    assert GENERATED[0] in stale.stderr
    assert GENERATED[1] in stale.stderr


def test_a_histogram_without_buckets_is_rejected_naming_the_field(repo_copy: Path) -> None:
    registry = repo_copy / "semconv" / "registry" / "metrics.yaml"
    _edit(registry, ", buckets: [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99, 1]}}", "}}")

    result = _generate(repo_copy, "--check")
    assert result.returncode == 1
    assert "llmotel.sli.plan.adherence" in result.stderr
    assert "annotations.llmotel.buckets" in result.stderr


def test_a_dimension_missing_from_the_registry_is_rejected(repo_copy: Path) -> None:
    _edit(repo_copy / "semconv" / "registry" / "metrics.yaml", "- ref: gen_ai.agent.name", "- ref: gen_ai.agent.nick")

    result = _generate(repo_copy, "--check")
    assert result.returncode == 1
    assert "'gen_ai.agent.nick' is not in the registry" in result.stderr


def test_shared_constant_reaches_both_languages(repo_copy: Path) -> None:
    _edit(repo_copy / "semconv" / "registry" / "constants.yaml", "value: 0.9", "value: 0.8")

    assert _generate(repo_copy).returncode == 0
    assert "CACHE_HIT_RATIO_THRESHOLD: Final = 0.8\n" in (repo_copy / GENERATED[0]).read_text()
    assert "CacheHitRatioThreshold = 0.8\n" in (repo_copy / GENERATED[1]).read_text()


@pytest.mark.skipif(shutil.which("go") is None, reason="mdatagen needs Go")
def test_mdatagen_check_fails_on_a_hand_edited_generated_file(tmp_path: Path) -> None:
    _copy(tmp_path, MDATAGEN_INPUTS)
    script = tmp_path / "collector" / "mdatagen.sh"
    fresh = subprocess.run([str(script), "--check"], capture_output=True, text=True, check=False)
    assert fresh.returncode == 0, fresh.stderr

    _edit(tmp_path / MDATAGEN_INPUTS[6], "StabilityLevelAlpha", "StabilityLevelBeta")
    stale = subprocess.run([str(script), "--check"], capture_output=True, text=True, check=False)
    assert stale.returncode == 1
    assert "internal/metadata/generated_status.go" in stale.stderr


def test_a_retyped_unit_or_description_fails_the_usage_check(repo_copy: Path) -> None:
    (repo_copy / "src" / "llmotel" / "leaky.py").write_text(
        'h = meter.create_histogram(METRIC, unit="ms", description=DESC)\n'
    )
    go = repo_copy / "collector" / "llmsliconnector" / "leaky.go"
    go.write_text('package llmsliconnector\n\nfunc f() { m.SetDescription("retyped") }\n')
    result = subprocess.run(
        [sys.executable, str(repo_copy / "semconv" / "check_usage.py")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "src/llmotel/leaky.py:1: literal metric unit/description" in result.stderr
    assert "collector/llmsliconnector/leaky.go:3: literal metric unit/description" in result.stderr
