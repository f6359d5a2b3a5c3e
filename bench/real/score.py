"""Scores of estimated queue / prefill against llama-server's truth, and the Markdown table.

Used by harness.py (live estimates read from llmotel's spans) and replay.py (estimates recomputed from a
recording). Error of a phase = |estimated - true| / TTFT, where TTFT is the client's: attempt sent ->
first content chunk (the span's queue + prefill + first_token) for streams, and for non-streaming calls,
whose first token the client never sees, the true one on the client's timeline (true queue + prefill).
The opaque baseline is what a span without phases implies: queue 0, all of TTFT prefill.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

CACHE_HIT_TOKENS = 64  # a call counts as a prefix-cache hit when the server reused at least this many tokens


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


def ttft_s(rec: dict[str, Any]) -> float:
    """The normaliser: the client-measured TTFT for streams, the true one for non-streaming calls."""
    cap, truth = rec["capture_ns"], rec["truth"]
    if rec["request"]["stream"] and cap["first_content"] > 0:
        return float(cap["first_content"] - cap["attempt_start"]) / 1e9
    return float(truth["queue_s"] + truth["prefill_s"])


def _interval(est: dict[str, Any], phase: str) -> tuple[float, float] | None:
    """(low, high) of a phase if the spans carried one, under any attribute name ending low/high."""
    attrs = (est.get(phase) or {}).get("interval") or {}
    low = next((float(v) for k, v in attrs.items() if k.endswith(("low", "lower", "min"))), None)
    high = next((float(v) for k, v in attrs.items() if k.endswith(("high", "upper", "max"))), None)
    return (low, high) if low is not None and high is not None else None


def samples(records: Iterable[dict[str, Any]], est_key: str = "live") -> list[dict[str, Any]]:
    """Per call: TTFT, estimated and true queue / prefill, interval coverage (None when no interval)."""
    out = []
    for rec in records:
        est = rec[est_key]
        t = ttft_s(rec)
        if t <= 0 or "queue" not in est or "prefill" not in est:
            continue
        truth = rec["truth"]
        cover: dict[str, bool | None] = {}
        for phase, true in (("queue", truth["queue_s"]), ("prefill", truth["prefill_s"])):
            iv = _interval(est, phase)
            cover[phase] = None if iv is None else iv[0] <= true <= iv[1]
        out.append({
            "call": rec["call"], "order": rec["order"], "ttft": t,
            "est_queue": float(est["queue"]["s"]), "est_prefill": float(est["prefill"]["s"]),
            "true_queue": float(truth["queue_s"]), "true_prefill": float(truth["prefill_s"]),
            "cache_hit": (truth.get("cache_n") or 0) >= CACHE_HIT_TOKENS, "cover": cover,
            "stream": rec["request"]["stream"],
        })
    return out


def summarize(name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    def err(key: str) -> list[float]:
        return [abs(s[f"est_{key}"] - s[f"true_{key}"]) / s["ttft"] for s in rows]

    q, p = err("queue"), err("prefill")
    opaque_q = [abs(s["true_queue"]) / s["ttft"] for s in rows]
    opaque_p = [abs(s["ttft"] - s["true_prefill"]) / s["ttft"] for s in rows]
    out: dict[str, Any] = {
        "workload": name, "n": len(rows),
        "ttft_median_ms": statistics.median(s["ttft"] for s in rows) * 1e3 if rows else float("nan"),
        "true_queue_share": statistics.median(s["true_queue"] / s["ttft"] for s in rows) if rows else float("nan"),
        "cache_hit_share": sum(s["cache_hit"] for s in rows) / len(rows) if rows else float("nan"),
        "queue_median": pct(q, 0.5), "queue_p90": pct(q, 0.9),
        "prefill_median": pct(p, 0.5), "prefill_p90": pct(p, 0.9),
        "opaque_queue_median": pct(opaque_q, 0.5), "opaque_queue_p90": pct(opaque_q, 0.9),
        "opaque_prefill_median": pct(opaque_p, 0.5), "opaque_prefill_p90": pct(opaque_p, 0.9),
        # Signed, so a systematic lean shows: estimated minus true queue, in ms.
        "queue_bias_ms": statistics.median(s["est_queue"] - s["true_queue"] for s in rows) * 1e3
        if rows else float("nan"),
    }
    for phase in ("queue", "prefill"):
        covered = [s["cover"][phase] for s in rows if s["cover"][phase] is not None]
        out[f"{phase}_coverage"] = sum(covered) / len(covered) if covered else None
    return out


def score_workload(name: str, records: list[dict[str, Any]], warmup: int,
                   est_key: str = "live") -> list[dict[str, Any]]:
    """The workload's row over the calls after the first ``warmup`` (in the order the model learned),
    plus hit / miss rows when some calls hit the prefix cache and some did not."""
    scored = [s for s in samples(records, est_key) if s["order"] >= warmup]
    rows = [summarize(name, scored)]
    hits = [s for s in scored if s["cache_hit"]]
    if hits and len(hits) < len(scored):
        rows.append(summarize(f"{name} (hits)", hits))
        rows.append(summarize(f"{name} (misses)", [s for s in scored if not s["cache_hit"]]))
    return rows


def _f(x: float | None) -> str:
    return "-" if x is None or x != x else f"{100 * x:.1f} %"


def render(rows: list[dict[str, Any]], warmup: int, measured: int, seconds: float, version: str,
           load_start: tuple[float, float, float], load_end: tuple[float, float, float],
           model: str = "a random-weight llama model") -> str:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import subprocess

    from _results import machine

    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parent,
                          capture_output=True, text=True, check=False).stdout.strip() or "unknown"
    lines = [
        "## Phase model accuracy against a real server (llama.cpp)",
        "",
        f"Machine: {machine()}. Command: `.venv/bin/python bench/real/harness.py` ({seconds:.0f} s), commit {head}"
        " (uncommitted changes to src/llmotel, if any, show as a recording hash other than the commit's)."
        f" Server: llama-server {version} (built from the `llama-cpp-python` sdist by"
        f" `bench/real/build_llama.sh`), CPU, {model} (`bench/real/model.py`).",
        f"Per workload {warmup} calls teach llmotel (a key of its own), the next {measured} are scored."
        " Truth: the server's own `timings`, kept by a loopback proxy and hidden from the client"
        " (definitions: `bench/real/README.md`): queue = attempt sent -> the server started the prompt,"
        " prefill = `timings.prompt_ms` (prompt started -> first token sampled). Error = |estimated - true| /"
        " TTFT (client-measured for streams; the true one for non-streaming calls). Opaque = the split a span"
        " without phases implies (queue 0, all of TTFT prefill). Coverage: share of calls whose true value"
        " lies in the span's interval (`-`: the spans carry none).",
        "",
        "| workload | calls | median TTFT | true queue share (median) | cache hits | queue median | queue p90 "
        "| prefill median | prefill p90 | opaque queue median / p90 | opaque prefill median / p90 "
        "| queue est - true (median) | coverage queue / prefill |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['workload']} | {r['n']} | {r['ttft_median_ms']:.0f} ms | {_f(r['true_queue_share'])} "
            f"| {_f(r['cache_hit_share'])} | {_f(r['queue_median'])} | {_f(r['queue_p90'])} "
            f"| {_f(r['prefill_median'])} | {_f(r['prefill_p90'])} "
            f"| {_f(r['opaque_queue_median'])} / {_f(r['opaque_queue_p90'])} "
            f"| {_f(r['opaque_prefill_median'])} / {_f(r['opaque_prefill_p90'])} "
            f"| {r['queue_bias_ms']:+.1f} ms | {_f(r['queue_coverage'])} / {_f(r['prefill_coverage'])} |"
        )
    load = ", ".join(f"{x:.1f}" for x in load_start)
    load2 = ", ".join(f"{x:.1f}" for x in load_end)
    lines += ["", f"Load average (1/5/15 min) at the start: {load}; at the end: {load2}."]
    return "\n".join(lines)
