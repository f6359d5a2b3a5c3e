"""How many concurrent streaming requests the simulator sustains on this machine without becoming the bottleneck.

The simulator runs as its own process (``llmotel-sim serve``), as it does behind the other benchmarks. A light
aiohttp client (not the SDKs: we measure the server, not the client) opens N concurrent streaming chat requests,
each producing T tokens, and reads every SSE chunk. "Not the bottleneck" means the server keeps to its own model:
for every request, the wall-clock time from arrival to last token it recorded (ground truth) stays close to the
modelled time divided by the speed. We report that lag, the client-observed time to first token and chunk gaps,
throughput, and the server process's CPU use.

    .venv/bin/python bench/sim_capacity.py [--concurrency 500 1000] [--tokens 64] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine, write_section

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = {
    "name": "capacity",
    "speed": 1.0,
    "routing": "least_loaded",
    "replica": {"max_batch": 512, "decode_step_s": 0.05, "decode_step_s_per_seq": 0.00002, "prefill_s_per_token": 1e-5},
    "regions": [{"name": "bench", "replicas": 4, "revision": "default"}],
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _stream(session: aiohttp.ClientSession, url: str, tokens: int, i: int) -> dict[str, float | str]:
    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": f"request {i}"}]}
    headers = {"Authorization": "Bearer tenant-bench", "x-sim-output-tokens": str(tokens)}
    t0 = time.perf_counter()
    first = 0.0
    last = t0
    max_gap = 0.0
    chunks = 0
    async with session.post(url, json=body, headers=headers) as resp:
        rid = resp.headers["x-sim-request-id"]
        async for data in resp.content.iter_any():
            now = time.perf_counter()
            n = data.count(b'"content":" ')  # every token starts with a space; the role chunk is empty
            if n:
                if not first:
                    first = now
                else:
                    max_gap = max(max_gap, now - last)
                last = now
                chunks += n
    return {"rid": rid, "ttft": first - t0, "total": time.perf_counter() - t0, "max_gap": max_gap, "chunks": chunks}


async def _run(base: str, concurrency: int, tokens: int) -> dict[str, float]:
    conn = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:
        t0 = time.perf_counter()
        results = await asyncio.gather(
            *[_stream(session, base + "/v1/chat/completions", tokens, i) for i in range(concurrency)],
            return_exceptions=True,
        )
        wall = time.perf_counter() - t0
        ok = [r for r in results if isinstance(r, dict) and r["chunks"] == tokens]
        lags = []
        server_ttft = []
        for r in ok:
            async with session.get(f"{base}/truth/{r['rid']}") as resp:
                truth = json.loads(await resp.text())
            model = truth["sim"]["total_s"] / SCENARIO["speed"]  # type: ignore[operator]
            lags.append(truth["wall"]["total_s"] / model if model else 1.0)
            server_ttft.append(float(truth["wall"]["ttft_s"]))
    ttfts = sorted(float(r["ttft"]) for r in ok)
    gaps = sorted(float(r["max_gap"]) for r in ok)
    return {
        "ok": len(ok),
        "failed": concurrency - len(ok),
        "wall_s": wall,
        "chunks_per_s": len(ok) * tokens / wall,
        "ttft_p50": statistics.median(ttfts) if ttfts else float("nan"),
        "ttft_p99": ttfts[int(0.99 * (len(ttfts) - 1))] if ttfts else float("nan"),
        "gap_p99": gaps[int(0.99 * (len(gaps) - 1))] if gaps else float("nan"),
        "server_ttft_p50": statistics.median(server_ttft) if server_ttft else float("nan"),
        "server_ttft_p99": sorted(server_ttft)[int(0.99 * (len(server_ttft) - 1))] if server_ttft else float("nan"),
        "lag_p50": statistics.median(lags) if lags else float("nan"),
        "lag_max": max(lags) if lags else float("nan"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[100, 500, 1000])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--no-write", action="store_true", help="print only, do not update bench/RESULTS.md")
    args = parser.parse_args()
    import yaml

    port = _free_port()
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(SCENARIO, f)
    server = subprocess.Popen(
        [sys.executable, "-m", "llmotel_sim.cli", "serve", "--scenario", f.name, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    try:
        assert server.stdout is not None
        print(server.stdout.readline().strip())
        base = f"http://127.0.0.1:{port}"
        rows = []
        for n in args.concurrency:
            cpu0, t0 = _cpu_seconds(server.pid), time.perf_counter()
            r = asyncio.run(_run(base, n, args.tokens))
            cpu = _cpu_seconds(server.pid) - cpu0
            r["server_cpu"] = cpu / (time.perf_counter() - t0)
            r["cpu_us_per_chunk"] = cpu / max(1.0, r["ok"] * args.tokens) * 1e6
            rows.append((n, r))
            print(n, {k: round(v, 4) for k, v in r.items()})
    finally:
        server.terminate()
        server.wait(10)
        os.unlink(f.name)
    load = os.getloadavg()[0]
    model_total = args.tokens * SCENARIO["replica"]["decode_step_s"]  # type: ignore[index]
    lines = [
        "## Simulator capacity (bench/sim_capacity.py)",
        "",
        f"Machine: {machine()}. Load average at the end of the run: {load:.1f} (the machine is shared).",
        "",
        f"`llmotel-sim serve` in its own process (4 replicas, max batch 512, decode step 50 ms + 20 us per running "
        f"sequence, speed 1); an aiohttp client opens N concurrent streaming chat requests of {args.tokens} tokens "
        f"each (model time about {model_total:.1f} s each) and reads every chunk. *lag* = the server's wall time from "
        "arrival to last token / the modelled time (1.00 = the server kept its model's pace; above 1 it is the "
        "bottleneck). *server TTFT* = the server's own arrival-to-first-token (truth); the client's TTFT adds "
        "connection set-up and the client's own CPU. Command: `.venv/bin/python bench/sim_capacity.py`.",
        "",
        "| concurrent streams | ok | failed | wall s | chunks/s | client TTFT p50 / p99 ms | server TTFT p50 / p99 ms "
        "| max chunk gap p99 ms | lag p50 | lag max | server CPU (cores) | server CPU per chunk (us) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, r in rows:
        lines.append(
            f"| {n} | {r['ok']:.0f} | {r['failed']:.0f} | {r['wall_s']:.2f} | {r['chunks_per_s']:.0f} | "
            f"{r['ttft_p50'] * 1000:.0f} / {r['ttft_p99'] * 1000:.0f} | "
            f"{r['server_ttft_p50'] * 1000:.0f} / {r['server_ttft_p99'] * 1000:.0f} | {r['gap_p99'] * 1000:.1f} | "
            f"{r['lag_p50']:.3f} | {r['lag_max']:.3f} | {r['server_cpu']:.2f} | {r['cpu_us_per_chunk']:.0f} |"
        )
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("sim_capacity", text)
    return 0 if all(r["failed"] == 0 for _, r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
