"""SLIs from OTHER instrumentations' spans in the real otelcol-llmotel (issue #17, part 4).

For each peer instrumentation, in its own venv (bench/.venvs/<peer>, created here by bench/peers/setup.sh when
missing or stale): the real `openai` client, instrumented by the peer and NOT by llmotel, makes streamed calls to
the simulator (tests/collector/_peer_app.py, a separate process); the peer's spans go over OTLP/HTTP to the real
collector (the sidecar config, plus `tenant_attributes` naming OpenLLMetry's gen_ai.user). Half-way the
simulator's region rolls out another model snapshot. The collector's Prometheus exporter must then hold, against
the simulator's truth (/truth/{id}) of every call: the calls per tenant, their duration, TTFT (where the peer
records the first chunk), input / output / cached tokens (where the peer records them), and one revision change
between the two snapshots.

- genai: opentelemetry-instrumentation-genai-openai 1.3b0; tenant from `user.id`; TTFT from
  gen_ai.response.time_to_first_chunk.
- traceloop: OpenLLMetry opentelemetry-instrumentation-openai 0.62.4; tenant from the request's `user` (recorded as
  gen_ai.user); TTFT from its first gen_ai.content.completion.chunk event.
- openai-v2: opentelemetry-instrumentation-openai-v2 2.4b0 in its default mode; tenant from `enduser.id`; it
  records no first-chunk time and no cached tokens, so there is no TTFT series and no cache reads (asserted: the
  limits are the peer's, and documented).
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from _otelcol import CONFIGS, ROOT, Otelcol, Sample, free_port

from llmotel_sim import SimServer

MODEL = "gpt-4o-mini"
CALLS = 2  # per half: before and after the rollout
SPEED = 2.0  # the simulator's: slow enough that a call's server time dwarfs what the client adds
SLACK_S = 0.15  # client-side time a call may add to the server's (loopback, a shared 2-core machine)
APP = Path(__file__).resolve().parent / "_peer_app.py"

PEERS = {  # peer -> (how the app names the tenant, tenant, records the first chunk, records cached tokens)
    "genai": ("user.id", "acme", True, True),
    "traceloop": ("user_param", "initech", True, True),
    "openai-v2": ("enduser.id", "globex", False, False),
}


def _index_reachable() -> bool:
    url = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple/").rstrip("/") + "/pip/"
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except OSError:
        return False


def peer_python(peer: str) -> Path:
    """The peer venv's interpreter, created or refreshed by bench/peers/setup.sh (a no-op when up to date)."""
    r = subprocess.run(["bash", str(ROOT / "bench" / "peers" / "setup.sh"), peer], capture_output=True, text=True,
                       timeout=900)
    if r.returncode != 0:
        if not _index_reachable():
            pytest.skip(f"bench/.venvs/{peer} cannot be created: the package index is unreachable ({r.stderr[-300:]})")
        pytest.fail(f"bench/peers/setup.sh {peer} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return ROOT / "bench" / ".venvs" / peer / "bin" / "python"


@pytest.fixture
def peer_collector(tmp_path: Path) -> Any:
    """The sidecar config, reading OpenLLMetry's gen_ai.user as a tenant too (the docs' one-line addition)."""
    config = yaml.safe_load((CONFIGS / "sidecar.yaml").read_text())
    config["connectors"]["llm_sli"]["tenant_attributes"] = ["user.id", "enduser.id", "gen_ai.user"]
    path = tmp_path / "peer-sidecar.yaml"
    path.write_text(yaml.safe_dump(config))
    http, prom = free_port(), free_port()
    env = {
        "LLMOTEL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{free_port()}",
        "LLMOTEL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{http}",
        "LLMOTEL_PROMETHEUS_ENDPOINT": f"127.0.0.1:{prom}",
        "LLMOTEL_SLI_FLUSH_INTERVAL": "500ms",
        "LLMOTEL_COLLECTOR_LOG_LEVEL": "warn",
    }
    with Otelcol(path, env, prometheus_port=prom) as col:
        yield col, http


def _run_app(python: Path, peer: str, sim: SimServer, otlp_port: int) -> list[str]:
    via, tenant, _, _ = PEERS[peer]
    r = subprocess.run(
        [str(python), str(APP), "--peer", peer, "--base-url", sim.base_url,
         "--otlp", f"http://127.0.0.1:{otlp_port}/v1/traces", "--tenant", tenant, "--tenant-via", via,
         "--calls", str(CALLS), "--system-repeat", "40", "--output-tokens", "40"],
        capture_output=True, text=True, timeout=120,
        # The peers' defaults, whatever this shell sets (OTEL_SEMCONV_STABILITY_OPT_IN changes what openai-v2 records).
        env={k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENAI_", "TRACELOOP_"))},
    )
    assert r.returncode == 0, f"peer app failed:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    ids: list[str] = json.loads(r.stdout.strip().splitlines()[-1])["ids"]
    return ids


def _truth(sim: SimServer, response_id: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{sim.base_url}/truth/{response_id.removeprefix('chatcmpl-')}", timeout=5) as r:
        truth: dict[str, Any] = json.loads(r.read())
    return truth


def _sum(samples: list[Sample], name: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


@pytest.mark.parametrize("peer", list(PEERS))
def test_peer_spans_yield_slis(peer: str, sim_factory: Callable[..., SimServer],
                               peer_collector: tuple[Otelcol, int]) -> None:
    python = peer_python(peer)
    col, otlp_port = peer_collector
    _, tenant, has_ttft, has_cache = PEERS[peer]
    sim = sim_factory(None, seed=1, speed=SPEED)
    region = sim.config.regions[0]
    before = _run_app(python, peer, sim, otlp_port)
    old = region.revision
    region.revision = next(r for r in sim.config.revisions if r != old)  # the rollout
    after = _run_app(python, peer, sim, otlp_port)
    truths = [_truth(sim, i) for i in before + after]
    n = len(truths)
    assert {t["revision"] for t in truths[:CALLS]} == {old} and {t["revision"] for t in truths[CALLS:]} != {old}
    assert {t["tenant"] for t in truths} == {tenant}  # the simulator's tenant is the API key the app used

    col.wait_until(lambda: _sum(col.scrape(), "llmotel_sli_requests_total") >= n, 30, f"{n} calls in the SLIs")
    s = col.scrape()
    who = {"llmotel_tenant_id": tenant, "gen_ai_request_model": MODEL}
    assert _sum(s, "llmotel_sli_requests_total", **who) == n
    assert _sum(s, "llmotel_sli_requests_total") == n  # no call without its tenant
    assert _sum(s, "llmotel_sli_spans_rejected_total") == 0

    # Duration and TTFT: at least the server's own time for the calls, at most that plus the loopback's.
    assert _sum(s, "llmotel_sli_request_duration_seconds_count", **who) == n
    server_total = sum(t["wall"]["total_s"] for t in truths)
    assert server_total <= _sum(s, "llmotel_sli_request_duration_seconds_sum", **who) <= server_total + n * SLACK_S
    ttft_count = _sum(s, "llmotel_sli_time_to_first_token_seconds_count", **who)
    if has_ttft:
        assert ttft_count == n
        server_ttft = sum(t["wall"]["ttft_s"] for t in truths)
        assert server_ttft <= _sum(s, "llmotel_sli_time_to_first_token_seconds_sum", **who) <= server_ttft + n * SLACK_S
    else:
        assert ttft_count == 0, "openai-v2 2.4b0 records no first-chunk time in its default mode"

    # Tokens, exactly the simulator's.
    assert _sum(s, "llmotel_sli_input_tokens_total", **who) == sum(t["input_tokens"] for t in truths)
    assert _sum(s, "llmotel_sli_output_tokens_total", **who) == sum(t["output_tokens"] for t in truths)
    cached = sum(t["cached_tokens"] for t in truths)
    assert cached > 0  # the repeated system prompt hit the simulator's prefix cache
    assert _sum(s, "llmotel_sli_cache_read_tokens_total", **who) == (cached if has_cache else 0)  # openai-v2: none

    # Revision drift: the simulator's two snapshots (as gen_ai.response.model), each seen in the window beside the
    # other, and one change between them.
    model = {"gen_ai_request_model": MODEL}
    assert _sum(s, "llmotel_sli_revision_changes_total", **model) == 1
    distinct = {x.labels["llmotel_model_revision"]: x.value for x in s
                if x.name == "llmotel_sli_revision_distinct" and x.labels.get("gen_ai_request_model") == MODEL}
    assert distinct == {t["resolved_model"]: 2.0 for t in truths}
