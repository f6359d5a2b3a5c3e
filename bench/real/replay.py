"""Replay recorded llama-server runs (tests/data/real_server/*.json) through llmotel's phase model.

No llama.cpp, no network: each recorded call is rebuilt as the ``LLMRequest`` / ``LLMResponse`` /
``CallCapture`` the OpenAI instrumentor built live (server timing hidden, as the proxy hid it) and split by
a fresh ``PhaseModel``, in the order the live model learned from them. The result pairs every call's
estimate with the server's truth, so a test can assert accuracy and a change to the estimator can be
judged against real llama.cpp behaviour without building it.

    .venv/bin/python bench/real/replay.py                  # every recording: the table, replayed
    .venv/bin/python bench/real/replay.py tests/data/real_server/idle.json
    .venv/bin/python bench/real/replay.py --compare-live tests/data/real_server/run-*-seed21/*.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RECORDINGS = ROOT / "tests" / "data" / "real_server"
# Replays start from an empty model; a state file would make them depend on the machine.
os.environ.pop("LLMOTEL_PHASE_MODEL_STATE", None)


def _phase_model() -> Any:
    """A fresh PhaseModel, from wherever this version of llmotel keeps it (it is moving to phases.model)."""
    try:
        from llmotel.phases.model import PhaseModel  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        from llmotel.phases import PhaseModel  # type: ignore[no-redef,unused-ignore]
    return PhaseModel()


def llmotel_source_hash(src: Path = ROOT / "src" / "llmotel") -> str:
    """A hash of llmotel's Python sources: recordings store it, so a test knows whether the estimates
    recorded live came from the code it is running."""
    h = hashlib.sha256()
    for path in sorted(src.rglob("*.py")):
        h.update(path.relative_to(src).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def recordings(directory: Path = RECORDINGS) -> list[Path]:
    """Every recording under ``directory``: one folder per harness run, one file per workload."""
    return sorted(directory.rglob("*.json"))


def replay(recording: dict[str, Any]) -> list[dict[str, Any]]:
    """Every call of one recording with ``replay`` (the estimate now: phase -> {s, source, confidence})
    added next to ``live`` (the estimate when it was recorded) and ``truth``."""
    from llmotel.record import CallCapture, LLMRequest, LLMResponse, ServerTiming, Usage

    meta = recording["meta"]
    model = _phase_model()
    out = []
    calls = sorted(recording["calls"], key=lambda r: r["order"])
    # Format 2 places every call on the run's clock (start_ns): streams are noted as they began, so calls that
    # shared a prefill pass find each other as they did live (phases/passes.py). Format 1 lays the calls end to
    # end in the order they were learned: no call overlaps another.
    timed = all("start_ns" in r for r in calls)
    origin = 10**12  # arbitrary perf_counter origin
    built = []
    clock = origin
    for rec in calls:
        req, cap, resp = rec["request"], rec["capture_ns"], rec["response"]
        request = LLMRequest(provider="openai", operation="chat", request_model=meta["model"]["alias"],
                             server_address=meta["server_address"], stream=req["stream"],
                             max_tokens=req["max_tokens"], prompt_chars=req.get("prompt_chars", 0))
        if req.get("prefixes") and hasattr(request, "prompt_prefixes"):
            request.prompt_prefixes = tuple((int(h), int(n)) for h, n in req["prefixes"])
        usage = Usage()
        if resp.get("usage"):
            u = resp["usage"]
            usage = Usage(input_tokens=u["input"], output_tokens=u["output"], cache_read_tokens=u["cached"])
        elif req["stream"] and cap["content_chunk_count"]:
            # As llmotel's span code does for a stream without usage: output tokens counted from chunks.
            usage = Usage(output_tokens=cap["content_chunk_count"], source="estimated")
        response = LLMResponse(response_model=resp.get("model") or "", usage=usage, status_code=200)
        base = origin + rec["start_ns"] if timed else clock

        def at(rel: int, b: int = base) -> int:
            return b + rel if rel else 0  # 0 stays "not observed"

        capture = CallCapture(
            start_wall_ns=base, start_ns=base, attempt_start_ns=base + cap["attempt_start"],
            headers_ns=at(cap["headers"]), first_content_ns=at(cap["first_content"]),
            last_chunk_ns=at(cap["last_chunk"]), end_ns=base + cap["end"], chunk_count=cap["chunk_count"],
            content_chunk_count=cap["content_chunk_count"],
        )
        built.append((rec, request, response, capture))
        clock += cap["end"] + 1_000_000
    began = sorted(range(len(built)), key=lambda i: built[i][3].start_ns) if timed else []
    noted = 0
    for rec, request, response, capture in built:
        while timed and noted < len(began) and built[began[noted]][3].start_ns <= capture.end_ns:
            _, r, _, c = built[began[noted]]
            if hasattr(model, "passes") and (r.stream or hasattr(model, "slots")):
                model.passes.began(r, c)
            noted += 1
        phases = model.split(request, response, capture, ServerTiming())
        est = {p.name: {"s": (p.end_ns - p.start_ns) / 1e9, "source": p.source, "confidence": p.confidence,
                        **({"interval": {"low": p.low_s, "high": p.high_s}} if p.low_s is not None else {})}
               for p in phases}
        out.append({**rec, "replay": est})
    return out


def score(recording: dict[str, Any], est_key: str = "replay") -> list[dict[str, Any]]:
    """The scoreboard rows of one recording (see score.py), by the replayed (or the live) estimate."""
    sys.path.insert(0, str(HERE))
    from score import score_workload

    meta = recording["meta"]
    calls = replay(recording) if est_key == "replay" else recording["calls"]
    rows: list[dict[str, Any]] = score_workload(meta["workload"], calls, int(meta["warmup"]), est_key)
    return rows


def main() -> None:
    sys.path.insert(0, str(ROOT / "src"))
    sys.path.insert(0, str(HERE))
    from score import render

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", type=Path)
    parser.add_argument("--live", action="store_true", help="score the estimates recorded live instead")
    parser.add_argument("--compare-live", action="store_true", help="per recording, the calls whose replay differs "
                        "from the live estimate (as tests/phases/test_real_server_replay.py counts them), whatever "
                        "source recorded it: a change meant to leave every estimate alone must leave 0")
    args = parser.parse_args()
    if args.compare_live:
        from score import ttft_s

        for path in args.paths or recordings():
            rec = load(path)
            calls = replay(rec)
            off = sum(any(abs(c["replay"][ph]["s"] - c["live"][ph]["s"]) > 0.01 * ttft_s(c) + 1e-4
                          for ph in ("queue", "prefill", "first_token", "decode")) for c in calls)
            print(f"{path.parent.name}/{path.stem}: {off} of {len(calls)} calls differ from the live estimate "
                  f"(recorded with {rec['meta'].get('llmotel_src_sha256')}, now {llmotel_source_hash()})")
        return
    rows: list[dict[str, Any]] = []
    version, warmup, measured = "unknown", 0, 0
    for path in args.paths or recordings():
        rec = load(path)
        version, warmup = rec["meta"].get("llama_cpp", version), int(rec["meta"]["warmup"])
        measured = max(measured, len(rec["calls"]) - warmup)
        rows += score(rec, "live" if args.live else "replay")
    print(render(rows, warmup, measured, 0.0, version, os.getloadavg(), os.getloadavg()))


if __name__ == "__main__":
    main()
