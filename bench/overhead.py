"""Added client CPU per LLM call: llmotel vs the bare client vs the peer instrumentations, side by side, in one run.

    .venv/bin/python bench/overhead.py            # ~4 min on 2 cores; writes the "overhead" section of bench/RESULTS.md
    .venv/bin/python bench/overhead.py --quick    # ~1 min smoke run, prints only

What it does (bench/README.md has the why):
1. `bench/peers/setup.sh` makes one venv per peer under bench/.venvs/ (pinned, idempotent; needs PyPI once).
2. `bench/canned_server.py` serves canned OpenAI chat completions and Anthropic messages on loopback, plain and as
   50-event SSE streams, pinned to the last CPU; its CPU is not the client's and is not counted.
3. For every configuration, `bench/peers/worker.py` runs in that configuration's venv (the project venv for bare,
   llmotel and the Anthropic SDK's own tracing), pinned to CPU 0, and alternates bare and instrumented batches of
   the same calls in one process. Each configuration runs once per round; rounds alternate the order.
4. Added CPU per call = instrumented batch minus its paired bare batch; the table gives the median over all pairs
   of all rounds and the min..max. Per stream event: (added on a 50-event stream - added on a plain call) / 50.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from _results import machine, write_section  # noqa: E402

STREAM_EVENTS = 50
CELLS = ("openai:plain", "openai:stream", "anthropic:plain", "anthropic:stream")
# Variables that change what an instrumentation records; every run starts from none of them, then sets its own.
SCRUBBED_PREFIXES = ("OTEL_", "TRACELOOP_", "ANTHROPIC_OPEN_TELEMETRY", "LLMOTEL_")


@dataclass(frozen=True)
class Config:
    name: str
    label: str
    venv: str  # "" = the project venv
    env: dict[str, str] = field(default_factory=dict)
    peer: bool = False  # counts for the target "at most half the best peer"
    cells: tuple[str, ...] = CELLS


CONFIGS = (
    Config("bare", "bare client (A/A check: both batches bare)", ""),
    Config("llmotel", "**llmotel** (all sub-spans; Anthropic SDK tracing at its default)", ""),
    Config("llmotel-sdk-off", "llmotel, Anthropic SDK tracing off", "", cells=CELLS[2:]),
    Config(
        "traceloop",
        "OpenLLMetry opentelemetry-instrumentation-openai/-anthropic",
        "traceloop",
        # Its default records prompts and completions; llmotel and the contrib ones do not by default.
        {"TRACELOOP_TRACE_CONTENT": "false"},
        peer=True,
    ),
    Config("genai", "opentelemetry-instrumentation-genai-openai/-anthropic", "genai", peer=True),
    Config("openai-v2", "opentelemetry-instrumentation-openai-v2 (deprecated)", "openai-v2", peer=True),
    Config("anthropic-sdk", "Anthropic SDK's own tracing (no instrumentor)", "", peer=True),
)


def python_for(config: Config) -> Path:
    venv = ROOT / ".venv" if not config.venv else BENCH / ".venvs" / config.venv
    return venv / "bin" / "python"


def child_env(config: Config) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
    env.update(config.env)
    env["PYTHONWARNINGS"] = "ignore"
    return env


def start_server(cpu: int | None) -> tuple[subprocess.Popen[str], str]:
    cmd = [str(ROOT / ".venv" / "bin" / "python"), str(BENCH / "canned_server.py"), "--port", "0"]
    if cpu is not None:
        cmd += ["--cpu", str(cpu)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if len(line) != 2 or line[0] != "PORT":
        proc.kill()
        raise SystemExit(f"canned server did not start: {line!r}")
    return proc, f"http://127.0.0.1:{line[1]}"


def run_worker(config: Config, base_url: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        str(python_for(config)),
        str(BENCH / "peers" / "worker.py"),
        "--config",
        config.name,
        "--base-url",
        base_url,
        "--calls",
        str(args.calls),
        "--pairs",
        str(args.pairs),
        "--warmup",
        str(args.warmup),
        "--cells",
        ",".join(config.cells),
    ]
    if args.client_cpu is not None:
        cmd += ["--cpu", str(args.client_cpu)]
    if not python_for(config).exists():
        return {"error": f"venv missing: {python_for(config).parent.parent} (run bash bench/peers/setup.sh)"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env(config), timeout=600)
    if proc.returncode != 0:
        tail = [line for line in proc.stderr.strip().splitlines() if line.strip()][-1:] or ["(no stderr)"]
        return {"error": f"worker exited {proc.returncode}: {tail[0].strip()}"}
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


@dataclass
class Cell:
    """Every (bare, instrumented) batch pair of one configuration and cell, over all rounds."""

    bare: list[float] = field(default_factory=list)
    added: list[float] = field(default_factory=list)
    spans_per_call: float = 0.0
    leak: bool = False  # a bare batch exported spans: the switch did not turn the instrumentation off

    def median(self) -> float:
        return statistics.median(self.added)

    def quartiles(self) -> tuple[float, float]:
        if len(self.added) < 2:
            return self.added[0], self.added[0]
        q1, _, q3 = statistics.quantiles(self.added, n=4)
        return q1, q3


def collect(results: list[dict[str, Any]]) -> dict[str, Cell]:
    cells: dict[str, Cell] = {}
    for result in results:
        for name, data in result.get("cells", {}).items():
            cell = cells.setdefault(name, Cell())
            for bare, inst in zip(data["bare"], data["instrumented"], strict=True):
                cell.bare.append(bare["cpu_us"])
                cell.added.append(inst["cpu_us"] - bare["cpu_us"])
                cell.spans_per_call = inst["spans_per_call"]
                cell.leak |= bare["spans_per_call"] > 0
    return cells


def per_event(cells: dict[str, Cell], provider: str) -> tuple[float, float, float] | None:
    """Added CPU per stream event: (stream - plain) / 50 of the medians, with the widest range the quartiles allow."""
    plain, stream = cells.get(f"{provider}:plain"), cells.get(f"{provider}:stream")
    if not plain or not stream or not plain.added or not stream.added:
        return None
    (p1, p3), (s1, s3) = plain.quartiles(), stream.quartiles()
    return (stream.median() - plain.median()) / STREAM_EVENTS, (s1 - p3) / STREAM_EVENTS, (s3 - p1) / STREAM_EVENTS


def fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 10 else f"{value:.1f}"


def fmt_cell(cell: Cell | None) -> str:
    if cell is None or not cell.added:
        return "—"
    mark = " ⚠ leak" if cell.leak else ""
    q1, q3 = cell.quartiles()
    return f"{fmt(cell.median())} ({fmt(q1)}..{fmt(q3)}){mark}"


def render(
    results: dict[str, list[dict[str, Any]]], args: argparse.Namespace, wall_s: float, command: str
) -> tuple[str, list[str]]:
    collected = {name: collect(runs) for name, runs in results.items()}
    lines = [
        f"Machine: {machine()}.",
        f"Command: `{command}` ({wall_s:.0f} s wall). Not part of `make test`.",
        "",
        "Added client CPU per call in µs: median over all (bare, instrumented) batch pairs, interquartile range in "
        f"brackets; {args.rounds} process(es) x {args.pairs} pairs x {args.calls} calls per batch, per cell. "
        "Stream = 50 SSE events (OpenAI: role chunk, 48 content chunks, finish chunk; Anthropic: message_start, "
        "content_block_start, ping, 44 content_block_delta, content_block_stop, message_delta, message_stop). "
        "Per event = (stream - plain) / 50 (the Anthropic SDK yields 49: it drops `ping`). The A/A row is the "
        "noise floor: its true value is 0.",
        "",
        "| configuration | spans/call | OpenAI plain | OpenAI stream | OpenAI per event | Anthropic plain "
        "| Anthropic stream | Anthropic per event |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    bare_cells = collected.get("bare", {})
    bare_row = ["bare client: absolute CPU per call, for scale", "0"]
    for provider in ("openai", "anthropic"):
        plain, stream = bare_cells.get(f"{provider}:plain"), bare_cells.get(f"{provider}:stream")
        if plain and stream:
            p, s = statistics.median(plain.bare), statistics.median(stream.bare)
            bare_row += [fmt(p), fmt(s), f"{(s - p) / STREAM_EVENTS:.1f}"]
        else:
            bare_row += ["—", "—", "—"]
    lines.append("| " + " | ".join(bare_row) + " |")
    errors: list[str] = []
    for config in CONFIGS:
        if config.name not in results:
            continue
        cells = collected[config.name]
        runs = results[config.name]
        for run in runs:
            if "error" in run:
                errors.append(f"- {config.name}: {run['error']}")
                break
            for provider, why in run.get("missing", {}).items():
                errors.append(f"- {config.name} / {provider}: not measured, {why}")
            break
        spans = sorted({f"{c.spans_per_call:g}" for c in cells.values()})
        row = [config.label, "/".join(spans) or "—"]
        for provider in ("openai", "anthropic"):
            row += [fmt_cell(cells.get(f"{provider}:plain")), fmt_cell(cells.get(f"{provider}:stream"))]
            event = per_event(cells, provider)
            row.append(f"{event[0]:.1f} ({event[1]:.1f}..{event[2]:.1f})" if event else "—")
        lines.append("| " + " | ".join(row) + " |")
    verdict = target_lines(collected)
    return "\n".join(lines), verdict + (["", "Not measured:", *dict.fromkeys(errors)] if errors else [])


def target_lines(collected: dict[str, dict[str, Cell]]) -> list[str]:
    """The acceptance target: llmotel's added CPU at most half the best (cheapest) peer's, per cell."""
    out = ["", "Target (llmotel added CPU <= 1/2 of the cheapest peer's, medians):", ""]
    llmotel = collected.get("llmotel", {})
    for cell in CELLS:
        peers = {
            c.name: collected[c.name][cell].median()
            for c in CONFIGS
            if c.peer and c.name in collected and cell in collected[c.name]
        }
        if cell not in llmotel or not peers:
            out.append(f"- {cell}: not measured (llmotel or every peer missing)")
            continue
        best = min(peers, key=lambda name: peers[name])
        ours = llmotel[cell].median()
        ok = ours <= peers[best] / 2
        out.append(
            f"- {cell}: llmotel {fmt(ours)} µs vs cheapest peer {best} {fmt(peers[best])} µs "
            f"(ratio {ours / peers[best]:.2f}) -> {'PASS' if ok else 'MISS'}"
        )
    return out


def method_notes(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    versions: dict[str, str] = {}
    patched: dict[str, int] = {}
    for name, runs in results.items():
        for run in runs:
            versions.update(run.get("versions", {}))
            if "patched" in run:
                patched[name] = len(run["patched"])
    return [
        "",
        "How: each configuration runs in its own process (its own venv for the peers: bench/peers/*.txt pin the same "
        "openai, anthropic and OpenTelemetry SDK as the project), with a real SDK `TracerProvider` + "
        "`BatchSpanProcessor` (queue large enough to drop nothing, flushed inside every timed batch) into an exporter "
        "that counts and drops spans, and an SDK `MeterProvider` with an `InMemoryMetricReader`; the same for every "
        "configuration, bare included. CPU = `time.process_time` of the whole process (all threads, so span export "
        "is counted). The worker instruments once and switches the patched attributes on and off between batches "
        "(bare and instrumented batches alternate ABBA in one process; a bare batch that exports any span is "
        "flagged ⚠ leak). Content capture off everywhere (OpenLLMetry's TRACELOOP_TRACE_CONTENT=false). The "
        "Anthropic SDK's own spans are off (client option `open_telemetry=False`) in every bare batch and every "
        "peer, on in the `anthropic-sdk` row and left to llmotel in the `llmotel` row. Sync clients, one "
        "keep-alive connection, `max_retries=0`; the server answers at once, so the numbers are client CPU only.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())) + ".",
        "Attributes switched per configuration: " + ", ".join(f"{k} {v}" for k, v in sorted(patched.items())) + ".",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="processes per configuration (order alternates)")
    parser.add_argument("--pairs", type=int, default=6, help="(bare, instrumented) batch pairs per cell per process")
    parser.add_argument("--calls", type=int, default=20, help="calls per batch")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls on each batch's fresh client")
    parser.add_argument("--configs", default=",".join(c.name for c in CONFIGS), help="comma-separated subset")
    parser.add_argument("--quick", action="store_true", help="1 round, 2 pairs, 10 calls; prints, writes nothing")
    parser.add_argument("--no-write", action="store_true", help="print the section, do not touch RESULTS.md")
    parser.add_argument("--skip-setup", action="store_true", help="do not run bench/peers/setup.sh")
    parser.add_argument("--json", type=Path, help="also dump every raw batch here")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.pairs, args.calls, args.no_write = 1, 2, 10, True
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    args.client_cpu = cpus[0] if len(cpus) >= 2 else None
    server_cpu = cpus[-1] if len(cpus) >= 2 else None

    wanted = set(args.configs.split(","))
    configs = [c for c in CONFIGS if c.name in wanted]
    peer_venvs = sorted({c.venv for c in configs if c.venv})
    if peer_venvs and not args.skip_setup:
        subprocess.run(["bash", str(BENCH / "peers" / "setup.sh"), *peer_venvs], check=True)

    started = time.monotonic()
    server, base_url = start_server(server_cpu)
    results: dict[str, list[dict[str, Any]]] = {c.name: [] for c in configs}
    try:
        for round_no in range(args.rounds):
            order = configs if round_no % 2 == 0 else configs[::-1]
            for config in order:
                t0 = time.monotonic()
                run = run_worker(config, base_url, args)
                results[config.name].append(run)
                status = run.get("error") or f"ok, {len(run.get('cells', {}))} cells"
                print(f"round {round_no + 1}/{args.rounds} {config.name}: {status} ({time.monotonic() - t0:.0f} s)")
    finally:
        server.terminate()
        server.wait(timeout=10)
    wall = time.monotonic() - started

    command = "bench/overhead.py" if not args.quick else "bench/overhead.py --quick"
    table, verdict = render(results, args, wall, ".venv/bin/python " + command)
    section = "## Overhead: added client CPU per call\n\n" + "\n".join([table, *verdict, *method_notes(results)])
    print()
    print(section)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if not args.no_write:
        write_section("overhead", section)
        print(f"\nwrote section 'overhead' of {BENCH / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
