"""The shipped examples are checked with the real tools: every collector config embedded in examples/k8s with the
binary that would run it (`validate`), the alert rules with promtool (syntax and unit tests), the dashboard's JSON.
The dashboard's queries run against a real Prometheus in test_sidecar.py."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_support import ROOT, require, require_stack
from stack import collector_binary

K8S = ROOT / "examples" / "k8s"
PROMETHEUS = ROOT / "examples" / "prometheus"
DASHBOARD = ROOT / "examples" / "grafana" / "llmotel-dashboard.json"


def embedded_configs() -> list[tuple[str, str, str, set[str]]]:
    """(manifest, component, collector config, env names its containers declare) for every ConfigMap."""
    out = []
    for manifest in sorted(K8S.glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(manifest.read_text()) if d]
        declared = {e["name"] for d in docs if d["kind"] in ("Deployment", "DaemonSet")
                    for c in d["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])}
        for d in docs:
            if d["kind"] == "ConfigMap" and "collector.yaml" in d["data"]:
                component = d["metadata"]["labels"]["app.kubernetes.io/component"]
                out.append((manifest.name, component, d["data"]["collector.yaml"], declared))
    return out


CONFIGS = embedded_configs()


def test_the_manifests_embed_a_sidecar_an_agent_and_a_gateway_config() -> None:
    assert {c[1] for c in CONFIGS} == {"sidecar", "agent", "gateway"}


@pytest.mark.parametrize(("manifest", "component", "config", "declared"), CONFIGS,
                         ids=[f"{c[0]}:{c[1]}" for c in CONFIGS])
def test_embedded_collector_config_passes_validate(
    manifest: str, component: str, config: str, declared: set[str], tmp_path: Path
) -> None:
    require_stack()
    used = set(re.findall(r"\$\{env:([A-Z0-9_]+)", config))
    assert used <= declared, f"{manifest}: {sorted(used - declared)} used in the config but not set on a container"
    binary = collector_binary()
    path = tmp_path / "collector.yaml"
    path.write_text(config)
    # The values the Deployment would set from the downward API / its env list.
    env = {"PATH": "/usr/bin:/bin", **{name: "127.0.0.1" if name.endswith("_IP") else "x-1" for name in used}}
    env.update({n: "127.0.0.1:4317" for n in used if n.endswith("_ENDPOINT")})
    result = subprocess.run([str(binary), "validate", "--config", str(path)], capture_output=True, text=True, env=env,
                            timeout=60)
    assert result.returncode == 0, f"{manifest} ({component}): {result.stderr}"


def test_a_broken_config_fails_validate(tmp_path: Path) -> None:
    """The check above can fail: a typo in the connector's config is rejected with the key named."""
    require_stack()
    config = next(c[2] for c in CONFIGS if c[1] == "sidecar").replace("flush_interval: 15s", "flush_interval: -1s")
    path = tmp_path / "collector.yaml"
    path.write_text(config)
    result = subprocess.run([str(collector_binary()), "validate", "--config", str(path)], capture_output=True,
                            text=True, env={"PATH": "/usr/bin:/bin", "TRACES_ENDPOINT": "127.0.0.1:4317"}, timeout=60)
    assert result.returncode != 0 and "flush_interval" in result.stderr


def promtool() -> str:
    path = shutil.which("promtool")
    require("promtool", path is not None, "apt-get install prometheus (promtool ships in the Debian package)")
    assert path is not None
    return path


def test_alert_rules_pass_promtool_check() -> None:
    result = subprocess.run([promtool(), "check", "rules", "alerts.yaml"], cwd=PROMETHEUS, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_fire_on_their_unit_test_series() -> None:
    result = subprocess.run([promtool(), "test", "rules", "alerts_test.yaml"], cwd=PROMETHEUS, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_cover_burn_rate_fairness_drift_and_truncation() -> None:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yaml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert {"LLMTimeToFirstTokenBudgetBurnFast", "LLMFairnessIndexLow", "LLMRevisionDriftBetweenRegions",
            "LLMResponsesTruncated"} <= alerts


def dashboard_targets() -> list[dict[str, Any]]:
    dash = json.loads(DASHBOARD.read_text())
    return [t for p in dash["panels"] for t in p.get("targets", [])]


def test_dashboard_is_grafana_json_with_a_query_per_target() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["panels"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for t in dashboard_targets():
        assert t["expr"].strip() and t["datasource"]["uid"] == "${DS_PROMETHEUS}"


def run_example(name: str, *args: str) -> str:
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENAI_", "ANTHROPIC_"))}
    result = subprocess.run([sys.executable, str(ROOT / "examples" / name), *args], capture_output=True, text=True,
                            env=env, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_plain_script_makes_one_span_per_call_tiled_by_phases() -> None:
    out = run_example("plain_script.py")
    calls = [line for line in out.splitlines() if line.startswith("chat ")]
    assert len(calls) == 2 and all("'llmotel.tenant.id': 'acme'" in c for c in calls), out
    phases = [line.split()[0] for line in out.splitlines() if line.startswith("  ")]
    assert phases.count("decode") == 2 and phases.count("queue") == 2, out


def test_web_service_tags_each_call_with_the_requests_tenant() -> None:
    out = run_example("web_service.py", "--demo")
    assert out.count("HTTP 200") == 3, out
    tenants = [line.rsplit("tenant=", 1)[1] for line in out.splitlines() if line.startswith("span ")]
    assert tenants == ["acme", "globex", "acme"], out
