"""The load generator through llmotel's instrumentors: every call it makes, warm-up included, belongs to a tenant."""

from __future__ import annotations

import asyncio
from collections import Counter

from _otel import instrumented
from llmotel import _semconv as sc
from llmotel.providers.anthropic import AnthropicInstrumentor
from llmotel.providers.openai import OpenAIInstrumentor
from llmotel_sim import SimServer
from llmotel_sim.loadgen import LoadGenerator, LoadSpec, TenantLoad


def test_warm_up_calls_are_tenanted_dry_runs(sim_factory) -> None:  # type: ignore[no-untyped-def]
    server: SimServer = sim_factory(None, seed=3, speed=200)
    # No arrival falls inside the plan: the run is the warm-up alone.
    spec = LoadSpec(duration_s=1e-9, tenants=[TenantLoad("acme"), TenantLoad("globex", provider="anthropic")])
    with instrumented(OpenAIInstrumentor, AnthropicInstrumentor) as otel:
        results = asyncio.run(LoadGenerator(server.base_url, spec, seed=1, speed=200).run())
        calls = otel.roots()
    assert results == []
    # An untenanted series would lower every fairness index downstream (Jain's over tenants).
    tenants = Counter((s.attributes or {}).get(sc.LLMOTEL_TENANT_ID) for s in calls)
    assert tenants == {"acme": 2, "globex": 2}, [(s.name, dict(s.attributes or {})) for s in calls]
    assert {(s.attributes or {}).get(sc.GEN_AI_REQUEST_STREAM) for s in calls} == {True, False}
    # Dry runs: answered outside the fleet, so no replica, cache, quota or truth of the scenario moved.
    assert server.truths() == []
