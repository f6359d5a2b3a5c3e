"""Added client CPU per LLM call: llmotel vs the bare client vs the peer instrumentations, side by side, in one run.

    .venv/bin/python bench/overhead.py             # in-process transport, ~7 min on 2 cores; section "overhead-inproc"
    .venv/bin/python bench/overhead.py --transport loopback  # over loopback HTTP (noisier); section "overhead"
    .venv/bin/python bench/overhead.py --quick     # ~40 s smoke run, prints only
    .venv/bin/python bench/overhead.py --callgrind # instruction counts instead (load-independent, ~15 min);
                                                   # writes section "overhead-callgrind"

What it does (bench/README.md has the why):
1. `bench/peers/setup.sh` makes one venv per peer under bench/.venvs/ (pinned, idempotent; needs PyPI once).
2. `bench/canned_server.py` builds canned OpenAI chat completions and Anthropic messages, plain and as 50-event SSE
   streams. `--transport inproc` (default): each worker's clients get an `httpx2.MockTransport` that answers with those
   bytes in the worker's process (no socket; everything above the transport runs for real). `--transport loopback`:
   canned_server.py serves them over HTTP from another process pinned to the last CPU (its CPU is not counted).
3. For every configuration, `bench/peers/worker.py` runs in that configuration's venv (the project venv for bare,
   llmotel and the Anthropic SDK's own tracing), pinned to CPU 0, and alternates bare and instrumented batches of
   the same calls in one process. Each configuration runs once per round; rounds alternate the order.
4. Added cost per call: pairs run in ABBA order; each ABBA quad gives the mean of its two (instrumented - bare) / bare
   ratios (a linear drift and the batch's position cancel inside it; as a ratio, a pair slowed by other work on the
   machine counts like a quiet one), times the cell's bare cost on a quiet machine (10th percentile of all its bare
   batches); the table gives the median over all quads of all rounds and its 95 % confidence interval. Per stream
   event: (added on a 50-event stream - added on a plain call) / 50. Instruction counts (--callgrind) are not scaled.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from _results import machine, write_section  # noqa: E402

STREAM_EVENTS = 50
# What the SDKs yield from a 50-event stream: every OpenAI chunk; the Anthropic SDK drops `ping`.
YIELDED = {"openai": STREAM_EVENTS, "anthropic": STREAM_EVENTS - 1}
TRANSPORTS = ("inproc", "loopback")
# Defaults per transport: in process a call is cheap and the noise is short bursts, so many short ABBA batches.
DEFAULTS = {
    # A plain call costs 1/5 (OpenAI) or 1/3 (Anthropic) of a stream: its cells get 3x the pairs for ~1/2 the time.
    # Processes of one configuration differ by ~10 % (layout, the machine's state), more than the pairs of one process
    # scatter: 4 processes of half the pairs each beat 2 of all of them.
    "inproc": {"rounds": 4, "pairs": 100, "plain_pairs": 300, "calls": 4, "warmup": 1, "prime": 20},
    "loopback": {"rounds": 2, "pairs": 6, "plain_pairs": 6, "calls": 20, "warmup": 3, "prime": 10},
}
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
    spans: int = 1  # spans every instrumented call must export (checked: a row that does not is flagged)


CONFIGS = (
    Config("bare", "bare client (A/A check: both batches bare)", "", spans=0),
    # The CLIENT span and its four phase children (queue, prefill, first_token, decode).
    Config("llmotel", "**llmotel** (all sub-spans; Anthropic SDK tracing at its default)", "", spans=5),
    Config("llmotel-sdk-off", "llmotel, Anthropic SDK tracing off", "", cells=CELLS[2:], spans=5),
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


@dataclass(frozen=True)
class Metric:
    key: str  # the field of a batch
    unit: str
    what: str
    # Deterministic counts only ever go up from one-time work (first batch after instrumentation starts, lazy
    # caches), so the steady per-call cost is the lowest batch of each state: estimate = min(inst) - min(bare).
    # Timings go both ways with the machine's load, so they use the median of paired differences.
    steady: bool = False


CPU = Metric("cpu_us", "µs", "Added client CPU per call in µs (`time.process_time`, all threads)")
INSTR = Metric(
    "kinstr",
    "k instr",
    "Added instructions per call in thousands (callgrind Ir, all threads; estimate = lowest instrumented batch - "
    "lowest bare batch)",
    steady=True,
)


def python_for(config: Config) -> Path:
    venv = ROOT / ".venv" if not config.venv else BENCH / ".venvs" / config.venv
    return venv / "bin" / "python"


def child_env(config: Config) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
    env.update(config.env)
    env["PYTHONWARNINGS"] = "ignore"
    env["PYTHONHASHSEED"] = "0"  # same dict layouts in every process: one less source of run-to-run difference
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


def worker_cmd(config: Config, base_url: str, args: argparse.Namespace) -> list[str]:
    cmd = [str(python_for(config)), str(BENCH / "peers" / "worker.py"), "--config", config.name]
    cmd += ["--transport", args.transport] + (["--base-url", base_url] if base_url else [])
    cmd += ["--calls", str(args.calls), "--pairs", str(args.pairs), "--plain-pairs", str(args.plain_pairs)]
    cmd += ["--warmup", str(args.warmup), "--prime", str(args.prime), "--cells", ",".join(config.cells)]
    if args.client_cpu is not None:
        cmd += ["--cpu", str(args.client_cpu)]
    return cmd


# Workers still running, so an interrupted run (Ctrl-C, SIGTERM) stops them too, whichever thread started them.
LIVE: set[subprocess.Popen[str]] = set()


def stop_workers() -> None:
    for proc in list(LIVE):
        proc.kill()


def run_worker(cmd: list[str], config: Config, timeout: float) -> dict[str, Any]:
    if not python_for(config).exists():
        return {"error": f"venv missing: {python_for(config).parent.parent} (run bash bench/peers/setup.sh)"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(config))
    LIVE.add(proc)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"error": f"worker timed out after {timeout:.0f} s"}
    except BaseException:  # Ctrl-C / SIGTERM while waiting: the worker goes too
        proc.kill()
        raise
    finally:
        LIVE.discard(proc)
    if proc.returncode != 0:
        tail = [line for line in stderr.strip().splitlines() if line.strip()][-1:] or ["(no stderr)"]
        return {"error": f"worker exited {proc.returncode}: {tail[0].strip()}"}
    result: dict[str, Any] = json.loads(stdout)
    return result


# --- callgrind -----------------------------------------------------------------------------------------------------


def build_markers() -> Path:
    """Compile bench/peers/cgmark.c (callgrind zero/dump client requests) into bench/.venvs/cgmark.so."""
    out = BENCH / ".venvs" / "cgmark.so"
    src = BENCH / "peers" / "cgmark.c"
    if not out.exists() or out.stat().st_mtime < src.stat().st_mtime:
        out.parent.mkdir(parents=True, exist_ok=True)
        cc = os.environ.get("CC", "cc")
        subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(out), str(src)], check=True)
    return out


_DESC = re.compile(r"^desc: Trigger: Client Request: (.*)$", re.M)
_SUMMARY = re.compile(r"^summary: (\d+)$", re.M)


def attach_instructions(result: dict[str, Any], dumps: list[Path]) -> None:
    """Put each batch's instruction count (per call, in thousands) next to its CPU time, matched by label."""
    counts: dict[str, int] = {}
    for dump in dumps:
        text = dump.read_text(errors="replace")
        desc, summary = _DESC.search(text), _SUMMARY.search(text)
        if desc and summary:
            counts[desc.group(1).strip()] = int(summary.group(1))
    for cell, data in result.get("cells", {}).items():
        for state, batches in (("0", data["bare"]), ("1", data["instrumented"])):
            for pair, batch in enumerate(batches):
                calls = batch.get("calls") or 1
                label = f"{cell}|{state}|{pair}|{calls}"
                if label in counts:
                    batch["kinstr"] = counts[label] / calls / 1e3


def run_callgrind(config: Config, base_url: str, args: argparse.Namespace, markers: Path) -> dict[str, Any]:
    out_dir = Path(tempfile.mkdtemp(prefix=f"cg-{config.name}-"))
    try:
        cmd = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",  # the worker turns it on after its imports
            f"--callgrind-out-file={out_dir}/cg.%p",
            "--dump-line=no",
            "--compress-strings=no",
            *worker_cmd(config, base_url, args),
            "--callgrind-markers",
            str(markers),
        ]
        result = run_worker(cmd, config, timeout=3600)
        if "error" not in result:
            attach_instructions(result, sorted(out_dir.glob("cg.*.*")))
        return result
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


# --- statistics and rendering --------------------------------------------------------------------------------------


@dataclass
class Cell:
    """Every (bare, instrumented) batch pair of one configuration and cell, over all rounds."""

    bare: list[float] = field(default_factory=list)
    inst: list[float] = field(default_factory=list)
    # Per ABBA quad (see `quads`), scaled to the quiet-machine bare cost (see `collect`); per pair for `steady`.
    added: list[float] = field(default_factory=list)
    spans_per_call: float = 0.0
    leak: bool = False  # a bare batch exported spans: the switch did not turn the instrumentation off
    wrong_spans: set[float] = field(default_factory=set)  # spans/call of instrumented batches that missed the count
    steady: bool = False  # see Metric.steady
    per_process: list[float] = field(default_factory=list)  # timings: the median of each process's quads

    def estimate(self) -> float:
        if self.steady:
            return min(self.inst) - min(self.bare)
        return statistics.median(self.added)

    def spread(self) -> tuple[float, float]:
        """Steady counts: the quartiles of the pair differences (min..max below 4 pairs). Timings: the lowest and the
        highest process's median; with one process, the 95 % confidence interval of the median, distribution-free
        (order statistics n/2 -+ 1.96 sqrt(n)/2). Processes differ by more than that interval: the run-to-run
        variation is the honest error bar."""
        if not self.steady and len(self.per_process) >= 2:
            return min(self.per_process), max(self.per_process)
        if len(self.added) < 4:
            return min(self.added), max(self.added)
        if self.steady:
            q1, _, q3 = statistics.quantiles(self.added, n=4)
            return q1, q3
        ordered, half = sorted(self.added), 1.96 * math.sqrt(len(self.added)) / 2
        low, high = math.floor(len(ordered) / 2 - half), math.ceil(len(ordered) / 2 + half)
        return ordered[max(0, low)], ordered[min(len(ordered) - 1, high)]


def quads(differences: list[float]) -> list[float]:
    """Pairs run B I | I B | B I | ...: the mean of each (B I, I B) quad's two differences cancels a linear drift and
    any cost of being the first or the second batch of a pair (a lone last pair stays as it is)."""
    return [sum(differences[i : i + 2]) / len(differences[i : i + 2]) for i in range(0, len(differences), 2)]


def quiet_bare(results: dict[str, list[dict[str, Any]]], metric: Metric) -> dict[str, float]:
    """Per cell, the bare client's cost on a quiet machine: the 10th percentile of every bare batch of the cell, in
    every configuration's processes (all run the same openai / anthropic / OpenTelemetry SDK versions)."""
    batches: dict[str, list[float]] = {}
    for runs in results.values():
        for run in runs:
            for name, data in run.get("cells", {}).items():
                batches.setdefault(name, []).extend(b[metric.key] for b in data["bare"] if metric.key in b)
    return {name: sorted(xs)[len(xs) // 10] for name, xs in batches.items() if xs}


def collect(
    runs: list[dict[str, Any]],
    metric: Metric,
    expected_spans: float | None = None,
    reference: dict[str, float] | None = None,
) -> dict[str, Cell]:
    """Each cell's batches over all runs. Timings: each pair's difference relative to its bare batch, times the
    cell's `reference` bare cost. Contention from other work (a busy sibling hyperthread, cache pressure) slows the
    instrumented and the bare code alike, so it scales the difference of a pair with it; as a fraction of its own
    bare batch, a pair measured in a slow moment counts like one measured in a quiet one."""
    cells: dict[str, Cell] = {}
    for run in runs:
        for name, data in run.get("cells", {}).items():
            cell = cells.setdefault(name, Cell(steady=metric.steady))
            differences = []
            for bare, inst in zip(data["bare"], data["instrumented"], strict=True):
                cell.leak |= bare["spans_per_call"] > 0
                cell.spans_per_call = inst["spans_per_call"]
                if expected_spans is not None and inst["spans_per_call"] != expected_spans:
                    cell.wrong_spans.add(inst["spans_per_call"])
                if metric.key in bare and metric.key in inst:
                    cell.bare.append(bare[metric.key])
                    cell.inst.append(inst[metric.key])
                    difference = inst[metric.key] - bare[metric.key]
                    if not metric.steady and reference and bare[metric.key] > 0:
                        difference *= reference[name] / bare[metric.key]
                    differences.append(difference)
            if metric.steady:
                cell.added += differences
            elif differences:
                cell.added += quads(differences)
                cell.per_process.append(statistics.median(quads(differences)))
    return cells


def per_event(cells: dict[str, Cell], provider: str) -> tuple[float, float, float] | None:
    """Added cost per stream event: (stream - plain) / 50 of the estimates, and the widest range the spreads allow."""
    plain, stream = cells.get(f"{provider}:plain"), cells.get(f"{provider}:stream")
    if not plain or not stream or not plain.added or not stream.added:
        return None
    if len(plain.per_process) >= 2 and len(plain.per_process) == len(stream.per_process):
        events = [(s - p) / STREAM_EVENTS for p, s in zip(plain.per_process, stream.per_process, strict=True)]
        return (stream.estimate() - plain.estimate()) / STREAM_EVENTS, min(events), max(events)
    (p1, p3), (s1, s3) = plain.spread(), stream.spread()
    return (stream.estimate() - plain.estimate()) / STREAM_EVENTS, (s1 - p3) / STREAM_EVENTS, (s3 - p1) / STREAM_EVENTS


def fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 10 else f"{value:.1f}"


def fmt_cell(cell: Cell | None, expected_spans: int) -> str:
    if cell is None or not cell.added:
        return "—"
    mark = " ⚠ leak" if cell.leak else ""
    if cell.wrong_spans:
        seen = "/".join(f"{n:g}" for n in sorted(cell.wrong_spans))
        mark += f" ⚠ {seen} spans/call, expected {expected_spans}"
    q1, q3 = cell.spread()
    return f"{fmt(cell.estimate())} ({fmt(q1)}..{fmt(q3)}){mark}"


def table(results: dict[str, list[dict[str, Any]]], metric: Metric, spread: str) -> list[str]:
    expected = {c.name: c.spans for c in CONFIGS}
    reference = {} if metric.steady else quiet_bare(results, metric)
    collected = {name: collect(runs, metric, expected.get(name), reference) for name, runs in results.items()}
    lines = [
        f"{metric.what}; {spread} in brackets. Stream = 50 SSE "
        "events (OpenAI: role chunk, 48 content chunks, finish chunk; Anthropic: message_start, content_block_start, "
        "ping, 44 content_block_delta, content_block_stop, message_delta, message_stop). Per event = (stream - plain) "
        "/ 50 (the Anthropic SDK yields 49 of them: it drops `ping`). The A/A row is the noise floor: its true value "
        "is 0.",
        "",
        "| configuration | spans/call | OpenAI plain | OpenAI stream | OpenAI per event | Anthropic plain "
        "| Anthropic stream | Anthropic per event |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    bare_cells = collected.get("bare", {})
    if metric.steady:
        bare_row = [f"bare client: absolute {metric.unit} per call, for scale", "0"]
    else:
        bare_row = [f"bare client: {metric.unit} per call on a quiet machine (the scale of every figure below)", "0"]
    for provider in ("openai", "anthropic"):
        plain, stream = bare_cells.get(f"{provider}:plain"), bare_cells.get(f"{provider}:stream")
        if metric.steady and plain and stream and plain.bare and stream.bare:
            p, s = min(plain.bare), min(stream.bare)
        elif not metric.steady and f"{provider}:plain" in reference and f"{provider}:stream" in reference:
            p, s = reference[f"{provider}:plain"], reference[f"{provider}:stream"]
        else:
            bare_row += ["—", "—", "—"]
            continue
        bare_row += [fmt(p), fmt(s), f"{(s - p) / STREAM_EVENTS:.1f}"]
    lines.append("| " + " | ".join(bare_row) + " |")
    for config in CONFIGS:
        if config.name not in collected:
            continue
        cells = collected[config.name]
        spans = sorted({f"{c.spans_per_call:g}" for c in cells.values()})
        row = [config.label, "/".join(spans) or "—"]
        for provider in ("openai", "anthropic"):
            row += [
                fmt_cell(cells.get(f"{provider}:plain"), config.spans),
                fmt_cell(cells.get(f"{provider}:stream"), config.spans),
            ]
            event = per_event(cells, provider)
            row.append(f"{event[0]:.1f} ({event[1]:.1f}..{event[2]:.1f})" if event else "—")
        lines.append("| " + " | ".join(row) + " |")
    return lines + target_lines(collected, metric)


# Issue #19: llmotel's added cost per call at most the cheapest peer's in every cell, per stream event at most half.
PER_CALL_TARGET, PER_EVENT_TARGET = 1.0, 0.5


def _cheapest(collected: dict[str, dict[str, Cell]], value: Any) -> dict[str, float]:
    """Each peer's figure (``value(cells)``) where its checks held: a peer that leaked or exported the wrong span
    count did not measure what it claims, so it is not a reference."""
    out: dict[str, float] = {}
    for c in CONFIGS:
        cells = collected.get(c.name)
        if not c.peer or not cells or any(cell.leak or cell.wrong_spans for cell in cells.values()):
            continue
        got = value(cells)
        if got is not None:
            out[c.name] = got
    return out


def target_lines(collected: dict[str, dict[str, Cell]], metric: Metric) -> list[str]:
    """The acceptance target (issue #19): per call <= 1.0x the cheapest peer in every cell, per stream event <= 0.5x."""
    out = [
        "",
        f"Target (issue #19: llmotel's added {metric.unit} per call <= {PER_CALL_TARGET:g}x the cheapest peer's in "
        f"every cell, per stream event <= {PER_EVENT_TARGET:g}x):",
        "",
    ]
    llmotel = collected.get("llmotel", {})
    rows: list[tuple[str, float | None, Any, float]] = [
        (
            cell,
            llmotel[cell].estimate() if llmotel.get(cell) and llmotel[cell].added else None,
            lambda cells, cell=cell: cells[cell].estimate() if cells.get(cell) and cells[cell].added else None,
            PER_CALL_TARGET,
        )
        for cell in CELLS
    ]
    for provider in ("openai", "anthropic"):
        ours = per_event(llmotel, provider)
        rows.append(
            (
                f"{provider}:per event",
                ours[0] if ours else None,
                lambda cells, p=provider: (per_event(cells, p) or (None,))[0],
                PER_EVENT_TARGET,
            )
        )
    for label, ours, value, limit in rows:
        peers = _cheapest(collected, value)
        if ours is None or not peers:
            out.append(f"- {label}: not measured (llmotel or every peer missing)")
            continue
        best = min(peers, key=lambda name: peers[name])
        verdict = "PASS" if ours <= peers[best] * limit else "MISS"
        ratio = f"ratio {ours / peers[best]:.2f}" if peers[best] > 0 else "peer within noise"
        miss = "" if verdict == "PASS" else f", {fmt(ours - peers[best] * limit)} {metric.unit} over"
        out.append(
            f"- {label}: llmotel {fmt(ours)} {metric.unit} vs cheapest peer {best} {fmt(peers[best])} {metric.unit} "
            f"({ratio}, limit {limit:g}x) -> {verdict}{miss}"
        )
    return out


def problems(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    errors: list[str] = []
    for name, runs in results.items():
        for run in runs:
            if "error" in run:
                errors.append(f"- {name}: {run['error']}")
            for provider, why in run.get("missing", {}).items():
                errors.append(f"- {name} / {provider}: not measured, {why}")
            for cell, data in run.get("cells", {}).items():
                provider, mode = cell.split(":")
                if mode == "stream" and data.get("chunks") != YIELDED[provider]:
                    errors.append(f"- {name} / {cell}: the SDK yielded {data.get('chunks')}, not {YIELDED[provider]}")
    unique = list(dict.fromkeys(errors))
    return ["", "Not measured, or a check failed:", *unique] if unique else []


TRANSPORT_NOTES = {
    "loopback": "Sync clients, one keep-alive connection, `max_retries=0`; the loopback server "
    "(bench/canned_server.py, another process on another CPU) answers at once with canned bodies, so the numbers "
    "are client work only.",
    "inproc": "Sync clients, `max_retries=0`, each on the SDK's own `DefaultHttpxClient` with an "
    "`httpx2.MockTransport` that answers in the worker's process with the bytes bench/canned_server.py serves "
    "(same headers and bodies; a stream is handed over one SSE event per read and decoded incrementally by the SDK): "
    "request building, response parsing, SSE decoding and every instrumentation's wrappers run as over a socket, "
    "only the socket is gone. Its own cost (a byte search of the request body and a fresh `httpx2.Response`) is in "
    "the bare client's absolute figure and the same in both batches of a pair. `gc.freeze()` after the priming "
    "calls, so a garbage collection walks what the calls allocated, not the import-time heap.",
}


def method_notes(results: dict[str, list[dict[str, Any]]], transport: str) -> list[str]:
    versions: dict[str, dict[str, list[str]]] = {}  # package -> version -> configurations
    patched: dict[str, int] = {}
    for name, runs in results.items():
        for run in runs[:1]:
            for package, version in run.get("versions", {}).items():
                users = versions.setdefault(package, {}).setdefault(version, [])
                users.append(name)
            if "patched" in run:
                patched[name] = len(run["patched"])

    def version_text(package: str, by_version: dict[str, list[str]]) -> str:
        if len(by_version) == 1:
            return f"{package} {next(iter(by_version))}"
        return f"{package} " + " / ".join(f"{v} ({', '.join(users)})" for v, users in sorted(by_version.items()))

    return [
        "",
        "How: each configuration runs in its own process (its own venv for the peers: bench/peers/*.txt pin the same "
        "openai, anthropic and OpenTelemetry SDK as the project), with a real SDK `TracerProvider` + "
        "`BatchSpanProcessor` (queue large enough to drop nothing, flushed inside every timed batch) into an exporter "
        "that counts and drops spans, and an SDK `MeterProvider` with an `InMemoryMetricReader`; the same for every "
        "configuration, bare included. The worker instruments once and switches the patched attributes on and off "
        "between batches (bare and instrumented batches alternate ABBA in one process, each on a fresh client after "
        "warm-up calls; a bare batch that exports any span is flagged ⚠ leak). Content capture off everywhere "
        "(OpenLLMetry: TRACELOOP_TRACE_CONTENT=false). The Anthropic SDK's own spans are off (client option "
        "`open_telemetry=False`) in every bare batch and every peer, on in the `anthropic-sdk` row and left to "
        f"llmotel in the `llmotel` row. {TRANSPORT_NOTES[transport]} Checks: every bare batch exports 0 spans, every "
        "instrumented batch the configuration's count (llmotel 5, a peer 1; a miss is flagged ⚠ in its cell), every "
        "stream yields 50 OpenAI chunks / 49 Anthropic events. Details: bench/README.md.",
        "",
        "Versions: " + ", ".join(version_text(k, v) for k, v in sorted(versions.items())) + ".",
        "Attributes switched per configuration: " + ", ".join(f"{k} {v}" for k, v in sorted(patched.items())) + ".",
    ]


# --- driver --------------------------------------------------------------------------------------------------------


def measure(configs: list[Config], args: argparse.Namespace, server_cpu: int | None) -> dict[str, list[dict[str, Any]]]:
    server, base_url = start_server(server_cpu) if args.transport == "loopback" else (None, "")
    results: dict[str, list[dict[str, Any]]] = {c.name: [] for c in configs}
    try:
        if args.callgrind:
            markers = build_markers()

            def one(config: Config) -> tuple[Config, dict[str, Any], float]:
                t0 = time.monotonic()
                return config, run_callgrind(config, base_url, args, markers), time.monotonic() - t0

            # Instruction counts do not depend on load, so the configurations may run side by side.
            with ThreadPoolExecutor(max_workers=max(1, len(os.sched_getaffinity(0)))) as pool:
                try:
                    for config, run, took in pool.map(one, configs):
                        results[config.name].append(run)
                        print(f"callgrind {config.name}: {run.get('error') or 'ok'} ({took:.0f} s)", flush=True)
                except BaseException:
                    stop_workers()  # before the pool's exit waits for its threads
                    raise
            return results
        for round_no in range(args.rounds):
            order = configs if round_no % 2 == 0 else configs[::-1]
            for config in order:
                t0 = time.monotonic()
                run = run_worker(worker_cmd(config, base_url, args), config, timeout=900)
                results[config.name].append(run)
                status = run.get("error") or f"ok, {len(run.get('cells', {}))} cells"
                print(f"round {round_no + 1}/{args.rounds} {config.name}: {status} ({time.monotonic() - t0:.0f} s)")
    finally:
        stop_workers()
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
    return results


def git_revision() -> str:
    """The commit the run measured, `-dirty` if the work tree had edits; "" outside a git checkout."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--transport",
        choices=TRANSPORTS,
        default="inproc",
        help="inproc: httpx2.MockTransport in the worker (default); loopback: HTTP to canned_server.py",
    )
    each = "; default per transport: " + ", ".join(f"{t} %s" for t in TRANSPORTS)
    for flag, help_text in (
        ("rounds", "processes per configuration (order alternates)"),
        ("pairs", "(bare, instrumented) batch pairs per stream cell per process"),
        ("plain_pairs", "(bare, instrumented) batch pairs per plain cell per process"),
        ("calls", "calls per batch"),
        ("warmup", "untimed calls on each batch's fresh client"),
        ("prime", "untimed calls per state before a cell's first pair"),
    ):
        defaults = tuple(DEFAULTS[t][flag] for t in TRANSPORTS)
        parser.add_argument(f"--{flag.replace('_', '-')}", type=int, default=None, help=help_text + each % defaults)
    parser.add_argument("--configs", default=",".join(c.name for c in CONFIGS), help="comma-separated subset")
    parser.add_argument("--quick", action="store_true", help="1 round, 2 pairs, 10 calls; prints, writes nothing")
    parser.add_argument(
        "--callgrind", action="store_true", help="count instructions under valgrind (1 round, 2 pairs, 4 calls)"
    )
    parser.add_argument("--no-write", action="store_true", help="print the section, do not touch RESULTS.md")
    parser.add_argument("--skip-setup", action="store_true", help="do not run bench/peers/setup.sh")
    parser.add_argument("--json", type=Path, help="also dump every raw batch here")
    parser.add_argument("--from-json", type=Path, help="render (and write) a run saved with --json; measure nothing")
    parser.add_argument("--note", default="", help="a paragraph to add under the table (e.g. how other runs compared)")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the server and the running worker are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for flag, default in DEFAULTS[args.transport].items():
        if getattr(args, flag) is None:
            setattr(args, flag, default)
    if args.quick:
        args.rounds, args.no_write = 1, True
        args.pairs, args.plain_pairs = max(2, args.pairs // 10), max(2, args.plain_pairs // 10)
    if args.callgrind:
        args.rounds, args.pairs, args.plain_pairs, args.calls, args.warmup, args.prime = 1, 2, 2, 4, 2, 20
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    args.client_cpu = cpus[0] if len(cpus) >= 2 and not args.callgrind else None
    server_cpu = cpus[-1] if len(cpus) >= 2 and not args.callgrind else None

    wanted = set(args.configs.split(","))
    configs = [c for c in CONFIGS if c.name in wanted]
    peer_venvs = sorted({c.venv for c in configs if c.venv})
    if peer_venvs and not args.skip_setup and not args.from_json:
        subprocess.run(["bash", str(BENCH / "peers" / "setup.sh"), *peer_venvs], check=True)

    flags = [a for a in sys.argv[1:] if not a.startswith("--json") and not a.endswith(".json")]
    command = " ".join([".venv/bin/python bench/overhead.py", *flags])
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        results, wall, command, load = saved["results"], saved["wall_s"], saved["command"], saved["load"]
        load_text = saved.get("load_text", f"{load:.1f} at the end of the run")
        revision = saved.get("revision", "")
        args.callgrind = saved["callgrind"]
        args.transport = saved.get("transport", "loopback")  # runs saved before --transport were loopback
        args.rounds, args.pairs, args.calls = saved["rounds"], saved["pairs"], saved["calls"]
        args.plain_pairs = saved.get("plain_pairs", args.pairs)
    else:
        started, load_before, revision_before = time.monotonic(), os.getloadavg()[0], git_revision()
        results = measure(configs, args, server_cpu)
        wall = time.monotonic() - started
        load = os.getloadavg()[0]
        load_text = f"{load_before:.1f} at the start of the run, {load:.1f} at the end"
        revision = git_revision()
        if revision != revision_before:
            # Workers import the code when they start: some configurations ran on the one, some on the other.
            revision = f"{revision_before} at the start, {revision} at the end: the code changed during the run"
    if args.callgrind:
        name, metric, title = "overhead-callgrind", INSTR, "## Overhead: added instructions per call (callgrind)"
        spread = f"min..max of the differences of {args.pairs} (bare, instrumented) pairs of {args.calls}-call batches"
    else:
        name, metric, title = "overhead", CPU, "## Overhead: added client CPU per call"
        if args.transport == "inproc":
            name, title = "overhead-inproc", title + " (in-process transport)"
        error_bar = (
            "the lowest and highest of the per-process medians (per event: of each process's (stream - plain) / 50)"
            if args.rounds >= 2
            else "the 95 % confidence interval of that median (order statistics)"
        )
        spread = (
            f"median over all {args.rounds} process(es) x {args.plain_pairs // 2} (plain) or {args.pairs // 2} "
            f"(stream) ABBA quads of {args.calls}-call batches "
            "(each quad: the mean of its two (instrumented - bare) / bare ratios, times the cell's bare cost on a "
            f"quiet machine: the 10th percentile of every bare batch of the cell in the run, first row); {error_bar}"
        )
    section = "\n".join(
        [
            title,
            "",
            f"Machine: {machine()}. Load average (1 min): {load_text} (other work on the machine).",
            f"Command: `{command}` ({wall:.0f} s wall). Not part of `make test`.",
            *([f"Code measured: `{revision}` (-dirty: with uncommitted edits in the work tree)."] if revision else []),
            "",
            *table(results, metric, spread),
            *(["", args.note] if args.note else []),
            *problems(results),
            *method_notes(results, args.transport),
        ]
    )
    print()
    print(section)
    if args.json:
        saved = {"results": results, "wall_s": wall, "command": command, "callgrind": args.callgrind, "load": load}
        saved["transport"], saved["load_text"] = args.transport, load_text
        saved["revision"] = revision
        saved |= {"rounds": args.rounds, "pairs": args.pairs, "plain_pairs": args.plain_pairs, "calls": args.calls}
        args.json.write_text(json.dumps(saved, indent=1))
    if not args.no_write:
        write_section(name, section)
        print(f"\nwrote section {name!r} of {BENCH / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
