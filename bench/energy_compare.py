"""Energy estimate: accuracy against published measurements / EcoLogits, and the cost of one estimate() call.

    .venv/bin/python bench/energy_compare.py          # prints and writes the "energy" section of bench/RESULTS.md

Accuracy: GPU energy per output token at batch 64 on H100 (no PUE) versus ML.ENERGY v2.0/v3.0 (figures and their
source: tests/test_energy_reference.py) and EcoLogits' own code (if installed). Speed: estimate() on a warm cache
(the steady state: the same models and regions recur) and on a cold one (a new model string every call, so the
lookup and coefficient computation run each time), median of several runs of time.perf_counter_ns loops.
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import machine, write_section

from llmotel.energy import config as energy_config
from llmotel.energy import estimator
from llmotel.record import Usage

MEASURED = [("Llama-3.1-8B", 8.03, 0.12, 0.20), ("Llama-3.1-70B", 70.6, 0.797, 1.409)]


def _ecologits_j_per_token(params_b: float) -> float | None:
    try:
        from ecologits.impacts.llm import compute_llm_impacts_dag
    except ImportError:
        return None
    dag = compute_llm_impacts_dag(
        model_active_parameter_count=params_b,
        model_total_parameter_count=params_b,
        output_token_count=1000,
        request_latency=math.inf,
        if_electricity_mix_adpe=0.0,
        if_electricity_mix_pe=0.0,
        if_electricity_mix_gwp=0.0,
        if_electricity_mix_wue=0.0,
        datacenter_pue=1.0,
        datacenter_wue=0.0,
    )
    return float(dag["gpu_energy"] * dag["gpu_required_count"] * 3.6e6 / 1000)


def accuracy_table() -> str:
    rows = [
        "| model (H100, batch 64) | ours J/token | ML.ENERGY v3.0 | ours / v3.0 | ML.ENERGY v2.0 | ours / v2.0 "
        "| EcoLogits | ours / EcoLogits |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, params, v3, v2 in MEASURED:
        ours = estimator.decode_wh_per_token(params, params, 64) * 3600
        eco = _ecologits_j_per_token(params)
        eco_cells = f"{eco:.3f} | {ours / eco:.3f}" if eco else "not installed | -"
        rows.append(f"| {name} | {ours:.3f} | {v3:.3f} | {ours / v3:.2f} | {v2:.3f} | {ours / v2:.2f} | {eco_cells} |")
    return "\n".join(rows)


def _ns_per_call(models: list[str], repeat: int = 7) -> float:
    usage = Usage(input_tokens=1200, output_tokens=300, cache_read_tokens=800)
    runs = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        for model in models:
            estimator.estimate(model, "us-east-1", usage, 2.5)
        runs.append((time.perf_counter_ns() - start) / len(models))
    return statistics.median(runs)


def _first_call_ns() -> float:
    """A fresh interpreter's first estimate(): parses the shipped CSVs (once per process)."""
    code = (
        "import time; from llmotel.energy import estimator; from llmotel.record import Usage; "
        "t = time.perf_counter_ns(); "
        "estimator.estimate('gpt-4o', 'us-east-1', Usage(input_tokens=10, output_tokens=10), 1.0); "
        "print(time.perf_counter_ns() - t)"
    )
    runs = [
        int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
        for _ in range(3)
    ]
    return statistics.median(runs)


def speed_table() -> str:
    first = _first_call_ns()
    estimator.reload(energy_config.EMPTY)
    warm_models = ["gpt-4o-mini", "claude-sonnet-4-5", "meta-llama/Llama-3.1-70B-Instruct", "qwen3-32b"] * 5000
    _ns_per_call(warm_models[:100], repeat=1)
    warm = _ns_per_call(warm_models)
    cold_models = [f"acme-model-{i}-13b" for i in range(20_000)]  # > the 512-entry cache: every call misses
    cold = _ns_per_call(cold_models, repeat=3)
    return (
        "| estimate() per call | median ns |\n|---|---|\n"
        f"| warm cache (4 recurring models) | {warm:,.0f} |\n"
        f"| cold (new model string every call) | {cold:,.0f} |\n"
        f"| first call in a process (parses the shipped CSVs once) | {first:,.0f} |"
    )


def main() -> None:
    accuracy = accuracy_table()
    speed = speed_table()
    markdown = (
        "## energy (bench/energy_compare.py)\n\n"
        f"Machine: {machine()}; 1-min load average at the end of the run {os.getloadavg()[0]:.1f} (a shared"
        " machine: timings are upper bounds)\n\n"
        "GPU energy per output token (decode, no PUE, no server share). ML.ENERGY figures: The ML.ENERGY blog,"
        ' "LLM Inference Energy: A Longitudinal Analysis" (2026-02-09); the target band is [v3.0, v2.0]'
        " (docs/energy.md).\n\n"
        f"{accuracy}\n\n{speed}\n"
    )
    print(markdown)
    write_section("energy", markdown)


if __name__ == "__main__":
    main()
