"""Gateway tier: app -> agent collector (loadbalancing exporter, routing by trace id) -> two otelcol-llmotel gateways.

The agent also mirrors every span to a third, single otelcol-llmotel: the same spans, one instance. Prometheus
scrapes the gateways as job "gateway" and the single one as job "single". Trace-local SLIs (plan adherence, TTFT,
phases) must be identical summed over the gateways, and Jain's index computed downstream from the gateways'
mergeable per-tenant counters must equal the single instance's own index.
"""

from __future__ import annotations

import pytest
import report
from e2e_support import AGENT_CONFIG, SCENARIO, Run, require_stack, run_app, wait_for
from stack import SIDECAR_CONFIG, Prometheus, Stack, collector_binary, free_port, sidecar_env, wait_until

from llmotel_sim import SimServer
from llmotel_sim.config import load_scenario

# The module fixture starts four collectors, Prometheus and the app (~40 s here; more on a slow machine).
pytestmark = pytest.mark.timeout(420)

GATEWAY = '{job="gateway"}'
SINGLE = '{job="single"}'


@pytest.fixture(scope="module")
def run(e2e_stack: Stack) -> Run:
    require_stack()
    config = load_scenario(SCENARIO)
    scrape: dict[str, list[str]] = {"gateway": [], "single": []}
    grpc: dict[str, int] = {}
    for name, job in (("gateway-1", "gateway"), ("gateway-2", "gateway"), ("single", "single")):
        otlp_http, otlp_grpc, exporter = free_port(), free_port(), free_port()
        env = sidecar_env(otlp_http, otlp_grpc, exporter, flush="1s", window="2m", slots=60, speed=config.speed)
        e2e_stack.collector(name, SIDECAR_CONFIG, env, ready_url=f"http://127.0.0.1:{exporter}/metrics")
        scrape[job].append(f"127.0.0.1:{exporter}")
        grpc[name] = otlp_grpc
    agent_http = free_port()
    agent_env = {
        "LLMOTEL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{agent_http}",
        "LLMOTEL_GATEWAY_1": f"127.0.0.1:{grpc['gateway-1']}",
        "LLMOTEL_GATEWAY_2": f"127.0.0.1:{grpc['gateway-2']}",
        "LLMOTEL_SINGLE_ENDPOINT": f"127.0.0.1:{grpc['single']}",
    }
    proc = e2e_stack.spawn("agent", [str(collector_binary()), "--config", str(AGENT_CONFIG)], env=agent_env)
    wait_until(lambda: _listening(e2e_stack, proc, agent_http), 30, f"agent collector ({e2e_stack.log_path('agent')})")
    prom = e2e_stack.prometheus(scrape)
    with SimServer(config, speed=config.speed) as sim:
        sent = run_app(e2e_stack, sim, config, f"http://127.0.0.1:{agent_http}", config.speed)
        truths = sim.truths()
    wait_for(prom, sent, SINGLE)
    wait_for(prom, sent, GATEWAY)
    return Run(prom, sent, truths, config)


def _listening(stack: Stack, proc: object, port: int) -> bool:
    import socket
    import subprocess

    assert isinstance(proc, subprocess.Popen)
    stack.check_alive("agent", proc)
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def series(prom: Prometheus, promql: str, *labels: str) -> dict[tuple[str, ...], float]:
    """{label values: value}; every result must have its own key (a typo in a label name cannot merge rows)."""
    samples = prom.query(promql)
    out = {tuple(s.labels.get(k, "") for k in labels): s.value for s in samples}
    assert len(out) == len(samples), f"labels {labels} do not tell the results of {promql!r} apart"
    return out


def test_both_gateways_received_part_of_the_traces(run: Run) -> None:
    per_instance = series(run.prom, f"sum by (instance) (llmotel_sli_requests_total{GATEWAY})", "instance")
    assert len(per_instance) == 2, per_instance
    total = run.prom.value(f"sum(llmotel_sli_requests_total{SINGLE})")
    assert total is not None
    for n in per_instance.values():
        assert 0 < n < total  # routing split the traffic: neither gateway saw everything


def test_plan_adherence_is_the_same_as_with_one_collector(run: Run) -> None:
    for metric in ("llmotel_sli_plan_adherence_bucket", "llmotel_sli_plan_precision_bucket",
                   "llmotel_sli_plan_recall_bucket"):
        by = "gen_ai_agent_name, le"
        gw = series(run.prom, f"sum by ({by}) ({metric}{GATEWAY})", "gen_ai_agent_name", "le")
        one = series(run.prom, f"sum by ({by}) ({metric}{SINGLE})", "gen_ai_agent_name", "le")
        assert gw and gw == one, metric
    by = "gen_ai_agent_name, llmotel_sli_step_kind"
    gw = series(run.prom, f"sum by ({by}) (llmotel_sli_plan_steps_total{GATEWAY})", *by.split(", "))
    one = series(run.prom, f"sum by ({by}) (llmotel_sli_plan_steps_total{SINGLE})", *by.split(", "))
    assert gw and gw == one
    mean = series(run.prom, f"sum by (gen_ai_agent_name) (llmotel_sli_plan_adherence_sum{GATEWAY})"
                  f" / sum by (gen_ai_agent_name) (llmotel_sli_plan_adherence_count{GATEWAY})", "gen_ai_agent_name")
    assert min(mean.values()) < 1.0 == max(mean.values()), mean  # the deviating agent stays visible


def test_per_trace_slis_are_the_same_as_with_one_collector(run: Run) -> None:
    keys = "llmotel_tenant_id, llmotel_server_region, llmotel_cache_state, le"
    for metric in ("llmotel_sli_time_to_first_token_seconds_bucket", "llmotel_sli_request_duration_seconds_bucket"):
        gw = series(run.prom, f"sum by ({keys}) ({metric}{GATEWAY})", *keys.split(", "))
        one = series(run.prom, f"sum by ({keys}) ({metric}{SINGLE})", *keys.split(", "))
        assert gw and gw == one, metric
    keys = "llmotel_phase_name, llmotel_phase_source"
    for suffix in ("count", "sum"):
        gw = series(run.prom, f"sum by ({keys}) (llmotel_sli_phase_duration_seconds_{suffix}{GATEWAY})",
                    *keys.split(", "))
        one = series(run.prom, f"sum by ({keys}) (llmotel_sli_phase_duration_seconds_{suffix}{SINGLE})",
                     *keys.split(", "))
        assert gw.keys() == one.keys()
        for k in one:
            assert gw[k] == pytest.approx(one[k], rel=1e-9), (suffix, k)
    for metric in ("llmotel_sli_requests_total", "llmotel_sli_input_tokens_total", "llmotel_sli_output_tokens_total",
                   "llmotel_sli_tenant_service_total", "llmotel_sli_tenant_demand_total"):
        gw = series(run.prom, f"sum by (llmotel_tenant_id) ({metric}{GATEWAY})", "llmotel_tenant_id")
        one = series(run.prom, f"sum by (llmotel_tenant_id) ({metric}{SINGLE})", "llmotel_tenant_id")
        assert gw and gw == one, metric


def test_service_spread_from_mergeable_counters_is_the_same_on_both_tiers(run: Run) -> None:
    # The counters merge across gateways (service and demand sum), so the spread computed from them downstream
    # equals the single instance's. The fairness index itself needs each waiting call's interval, which counters
    # do not carry: exact only where a pool's calls reach one instance (collector/README.md, Fairness), so each
    # gateway reports its own per-pool index and no downstream merge is claimed.
    single = run.prom.value(report.jain_from_counters(SINGLE))
    downstream = run.prom.value(report.jain_from_counters(GATEWAY))
    assert single is not None and downstream is not None
    assert downstream == pytest.approx(single, rel=1e-6)
    local = [s.value for s in run.prom.query(f"llmotel_sli_fairness_jain_index_ratio{GATEWAY}")]
    assert len(local) == 2 and all(0 < v <= 1 for v in local)
