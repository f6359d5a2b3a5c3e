"""Load generator of test_fairness_random_windows.py: the simulator's own load generator (real async openai clients)
instrumented by the real SDK (``import llmotel.auto``: OTLP to the collector from the standard OTEL_* variables),
driving one part of a scenario's tenants (``--part i/n``: the tenants of every n-th pool, so several processes can
share the load).

It prints one JSON line: calls made and answered, wall time, how late calls were dispatched, and how long the SDK
took to export its queue at the end (``force_flush``: every span must leave the process; the test then checks that
the collector counted every call).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from opentelemetry import trace

import llmotel.auto  # noqa: F401  (exports per OTEL_*; instruments installed clients)
from llmotel_sim.config import load_scenario
from llmotel_sim.loadgen import LoadGenerator, LoadSpec, instrument_if_available


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("scenario")
    parser.add_argument("--url", required=True)
    parser.add_argument("--part", default="0/1", help="i/n: drive the tenants of pools i, i+n, i+2n, ...")
    parser.add_argument("--calls", help="write each call's client measurements here (JSON): request id, start "
                        "(unix s), TTFT and total seconds as the client saw them")
    args = parser.parse_args(argv)
    index, parts = (int(x) for x in args.part.split("/"))
    config = load_scenario(args.scenario)
    spec = LoadSpec.from_config(config)
    regions = [r.name for r in config.regions]
    mine = {name for i, name in enumerate(regions) if i % parts == index}
    spec.tenants = [t for t in spec.tenants if t.region in mine]
    instrument_if_available()
    gen = LoadGenerator(args.url.rstrip("/"), spec, config.seed + index, config.speed)
    epoch = time.time() - time.perf_counter()  # perf_counter -> unix seconds
    t0 = time.perf_counter()
    results = asyncio.run(gen.run())
    wall = time.perf_counter() - t0
    t1 = time.perf_counter()
    flushed = trace.get_tracer_provider().force_flush(timeout_millis=120_000)  # type: ignore[attr-defined]
    if args.calls:
        with open(args.calls, "w") as f:
            json.dump([{"request_id": r.request_id, "start": r.start_wall + epoch, "ttft": r.ttft_s, "total": r.total_s}
                       for r in results if r.ok], f)
    late = sorted(r.late_s for r in results)
    print(json.dumps({
        "calls": len(results), "ok": sum(1 for r in results if r.ok), "wall_s": round(wall, 2),
        "late_p95_s": round(late[int(0.95 * (len(late) - 1))], 3) if late else 0.0,
        "late_max_s": round(late[-1], 3) if late else 0.0,
        "flush_s": round(time.perf_counter() - t1, 2), "flushed": bool(flushed),
        "errors": sorted({r.error for r in results if not r.ok})[:5],
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
