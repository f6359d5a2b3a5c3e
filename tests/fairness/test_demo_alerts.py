"""`make demo` runs for about a minute: its Prometheus loads the shipped rules with every alert's `for:` cut to
DEMO_ALERT_HOLD (examples/e2e/stack.py, demo_rules), so LLMNoisyNeighbor can fire on the demo's noisy tenant. Checked
with promtool on the same series against both files: the demo copy fires within seconds, the shipped file (5m) does
not, and nothing but `for:` differs between them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml
from e2e_support import require
from stack import ALERT_RULES, DEMO_ALERT_HOLD, demo_rules

NOISY = ('llmotel_sli_noisy_neighbor_ratio{server_address="127.0.0.1", gen_ai_request_model="gpt-4o", '
         'llmotel_server_region="IAD", llmotel_tenant_id="bully"}')


def _unit_test(rules: Path, fires: bool) -> str:
    expected = [{"exp_labels": {"severity": "ticket", "server_address": "127.0.0.1", "gen_ai_request_model": "gpt-4o",
                                "llmotel_server_region": "IAD", "llmotel_tenant_id": "bully"},
                 "exp_annotations": {
                     "summary": "Tenant bully is the noisy neighbour of pool 127.0.0.1 / gpt-4o",
                     "description": "Share of the other tenants' queue time it caused: "
                     'llmotel_sli_tenant_blame_share{llmotel_tenant_id="bully"}.'}}] if fires else []
    return yaml.safe_dump({
        "rule_files": [str(rules)],
        "evaluation_interval": "1s",
        "tests": [{"interval": "1s", "input_series": [{"series": NOISY, "values": "0 0 1x20"}],
                   "alert_rule_test": [{"eval_time": "15s", "alertname": "LLMNoisyNeighbor", "exp_alerts": expected}]}],
    })


def test_the_demo_copy_differs_from_the_shipped_rules_only_in_for(tmp_path: Path) -> None:
    shipped = yaml.safe_load(ALERT_RULES.read_text())
    demo = yaml.safe_load(demo_rules(tmp_path).read_text())
    for group in shipped["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = DEMO_ALERT_HOLD
    assert demo == shipped


def test_the_noisy_neighbour_alert_fires_within_the_demo_and_not_with_the_shipped_hold(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    require("promtool", promtool is not None, "apt-get install prometheus (promtool ships in the Debian package)")
    assert promtool is not None
    for rules, fires in ((demo_rules(tmp_path), True), (ALERT_RULES, False)):
        test = tmp_path / f"{rules.stem}_test.yaml"
        test.write_text(_unit_test(rules.resolve(), fires))
        result = subprocess.run([promtool, "test", "rules", str(test)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (rules, result.stdout + result.stderr)
