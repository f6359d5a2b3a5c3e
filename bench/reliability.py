"""Reliability figures for bench/RESULTS.md: long fuzz runs, peak RSS over many distinct keys, exporter down.

    .venv/bin/python bench/reliability.py [--examples 5000] [--calls 100000]

1. Runs the hypothesis property tests (tests/reliability/test_fuzz_*.py) with ``--examples`` random examples
   per property (fresh randomness each run) and counts the inputs tried and the failures.
2. In a fresh process, pushes ``--calls`` synthetic calls with distinct keys (model, host, region, revision,
   tenant, fingerprint) through the real span pipeline and records peak RSS at checkpoints: flat after the
   caps fill means bounded.
3. The same with the OTLP endpoint down (a closed port; real exporters, batch queue 2048).
Writes the "reliability" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine, write_section

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

_RSS_CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, "tests/reliability")
from _synthetic import one_call
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from llmotel.telemetry import spans
calls, mode = int(sys.argv[1]), sys.argv[2]
if mode == "down":
    from _otlp_receiver import closed_port
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    import logging; logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)
    url = f"http://127.0.0.1:{closed_port()}"
    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url + "/v1/traces", timeout=2)))
    metric_exporter = OTLPMetricExporter(endpoint=url + "/v1/metrics", timeout=2)
    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=1000)
else:
    tp = TracerProvider()
    reader = InMemoryMetricReader()
spans.configure(tp, MeterProvider(metric_readers=[reader]))
marks, out, t0 = sorted({calls // 10, calls // 2, calls}), [], time.perf_counter()
for i in range(calls):
    one_call(i, distinct=True)
    if i + 1 in marks:
        if mode != "down":
            reader.collect()
        out.append([i + 1, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024])
print(json.dumps({"marks": out, "us_per_call": (time.perf_counter() - t0) / calls * 1e6}))
"""


def fuzz(examples: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "fuzz.json"
        env = {
            **os.environ,
            "LLMOTEL_FUZZ_EXAMPLES": str(examples),
            "LLMOTEL_FUZZ_RANDOM": "1",
            "LLMOTEL_FUZZ_REPORT": str(report),
        }
        t0 = time.perf_counter()
        proc = subprocess.run(
            [
                PY,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:timeout",
                "-p",
                "no:xdist",
                "tests/reliability/test_fuzz_readers.py",
                "tests/reliability/test_fuzz_spans.py",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        data = json.loads(report.read_text()) if report.exists() else {"tried": {}}
        tail = proc.stdout.strip().splitlines()[-1:] if proc.stdout else []
        return {
            "tried": data["tried"],
            "failed": proc.returncode != 0,
            "summary": " ".join(tail),
            "seconds": time.perf_counter() - t0,
        }


def rss(calls: int, mode: str) -> dict[str, object]:
    proc = subprocess.run(
        [PY, "-c", _RSS_CHILD, str(calls), mode],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        check=True,
    )
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def render(examples: int, calls: int, f: dict[str, object], mem: dict[str, object], down: dict[str, object]) -> str:
    tried: dict[str, int] = f["tried"]  # type: ignore[assignment]
    rows = "\n".join(f"| {k} | {v:,} |" for k, v in sorted(tried.items()))

    def marks(r: dict[str, object]) -> str:
        return ", ".join(f"{n:,} calls: {mb} MB" for n, mb in r["marks"])  # type: ignore[attr-defined]

    verdict = "FAILURES — see the pytest output" if f["failed"] else "0 crashes"
    return f"""## reliability (bench/reliability.py)

Machine: {machine()}.
Command: `make fuzz FUZZ_EXAMPLES={examples} FUZZ_CALLS={calls}` (runs `bench/reliability.py --examples {examples}
--calls {calls}`, then the collector's go fuzz).

Long fuzz run ({examples:,} fresh random examples per property, {f["seconds"]:.0f} s on a loaded machine):
**{sum(tried.values()):,} inputs tried, {verdict}** (`{f["summary"]}`).

| property (tests/reliability/test_fuzz_*.py) | inputs tried |
|---|---|
{rows}

Bugs found and fixed while building the suite (fault suite + fuzzing): 2 — `uninstrument()` removed another
instrumentation's wrapper instead of llmotel's (`wrapping.unwrap_ours`); negative / >= 2**63 token counts reached
the token histogram and the OTLP int64 encoder (providers' `_int`).

Peak RSS (ru_maxrss) of a fresh process pushing {calls:,} synthetic calls through the real span pipeline, every
key distinct (model, host, region, revision, tenant, prefix fingerprint), at checkpoints — flat once the caps
(and the OTel SDK's 2,000-series cardinality limit per instrument) are reached:

- in-memory metrics: {marks(mem)} ({mem["us_per_call"]:.0f} us/call incl. the OTel SDK)
- OTLP endpoint down (real exporters, span queue 2,048, metric exports retried): {marks(down)}
  ({down["us_per_call"]:.0f} us/call)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=5000)
    ap.add_argument("--calls", type=int, default=100_000)
    args = ap.parse_args()
    f = fuzz(args.examples)
    print("fuzz", f, flush=True)
    mem = rss(args.calls, "memory")
    print("rss", mem, flush=True)
    down = rss(args.calls, "down")
    print("rss exporter down", down, flush=True)
    md = render(args.examples, args.calls, f, mem, down)
    write_section("reliability", md)
    print(md)


if __name__ == "__main__":
    main()
