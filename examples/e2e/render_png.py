"""Render the demo's SLI report (read from Prometheus by examples/demo.py) to PNG images for the README.

    .venv/bin/python examples/demo.py --json /tmp/demo.json > /tmp/demo.txt
    .venv/bin/python examples/e2e/render_png.py /tmp/demo.json /tmp/demo.txt docs/img

Writes docs/img/demo-slis.png (charts of the SLIs) and docs/img/demo-report.png (the printed report as a terminal
would show it). Needs matplotlib (in the dev extra). Every number drawn comes from the JSON, i.e. from PromQL.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

PHASES = ("queue", "prefill", "first_token", "decode")
COLORS = {"queue": "#d62728", "prefill": "#ff7f0e", "first_token": "#bcbd22", "decode": "#1f77b4"}


def charts(data: dict[str, Any], out: Path) -> None:
    fig, axes = plt.subplots(2, 3, figsize=(16, 8.6))
    fig.suptitle(f"llmotel demo: SLIs read back from Prometheus (simulator at {data['speed']:g}x real time; "
                 "wall-clock durations)", fontsize=13, fontweight="bold")

    ax = axes[0][0]
    rows = [r for r in data["ttft"] if r.get("calls", 0) >= 3 and "p95" in r]
    labels = [f"{r['llmotel_tenant_id']}\n{r['llmotel_server_region']}" for r in rows]
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [r.get("p50", 0) * 1000 for r in rows], 0.4, label="p50", color="#9ecae1")
    ax.bar([x + 0.2 for x in xs], [r["p95"] * 1000 for r in rows], 0.4, label="p95", color="#08519c")
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.set_ylabel("ms")
    ax.set_title("Time to first token by tenant and region")
    ax.legend()

    ax = axes[0][1]
    means = {(r["llmotel_phase_name"], r["llmotel_phase_source"]): (r.get("mean_s", 0), r.get("count", 0))
             for r in data["phases"]}
    left = 0.0
    for phase in PHASES:
        # Weighted mean over sources, so the bar is the mean call's tiling.
        pairs = [v for (p, _), v in means.items() if p == phase]
        n = sum(c for _, c in pairs)
        mean = sum(m * c for m, c in pairs) / n if n else 0.0
        sources = ", ".join(sorted(s for (p, s) in means if p == phase))
        ax.barh([0], [mean * 1000], left=[left], color=COLORS[phase], label=f"{phase} ({sources})")
        left += mean * 1000
    ax.set_yticks([])
    ax.set_xlabel("ms (mean call)")
    ax.set_title("Where the time went: phases of a call")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=2)
    ax.set_ylim(-0.6, 0.6)

    ax = axes[0][2]
    tenants = [r for r in data["tenants"] if r["llmotel_tenant_id"]]
    names = [r["llmotel_tenant_id"] for r in tenants]
    ax.bar(names, [r.get("slowdown", 0) for r in tenants], color="#756bb1")
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    noisy = max(data["noisy_neighbor"], key=lambda r: r["value"], default=None)
    title = f"p95 TTFT slowdown vs fleet; Jain's index {data['jain']:.2f}" if data.get("jain") is not None else ""
    ax.set_title(title)
    if noisy:
        i = names.index(noisy["llmotel_tenant_id"]) if noisy["llmotel_tenant_id"] in names else None
        if i is not None:
            ax.annotate(f"noisy neighbour\n(score {noisy['value']:.2f})", (i, tenants[i].get("slowdown", 0)),
                        xytext=(0, 8), textcoords="offset points", ha="center", fontsize=9, color="#d62728")
    ax.set_ylabel("x fleet p95")
    ax.set_ylim(0, max([r.get("slowdown", 0) for r in tenants] + [1.0]) * 1.35)

    ax = axes[1][0]
    ax.axis("off")
    ax.set_title("Revision drift: revisions per (model, region) in the window")
    by_key: dict[tuple[str, str], list[str]] = {}
    for r in data["revisions"]:
        key = (r["gen_ai_request_model"], r["llmotel_server_region"])
        by_key.setdefault(key, []).append(r["llmotel_model_revision"])
    cells = [[m, reg, "\n".join(sorted(v))] for (m, reg), v in sorted(by_key.items())]
    if cells:
        table = ax.table(cellText=cells, colLabels=["model", "region", "revisions seen"], loc="center",
                         colWidths=[0.3, 0.15, 0.55])
        table.auto_set_font_size(False)
        table.set_fontsize(8)
        for (row, _), cell in table.get_celld().items():
            if row > 0 and "\n" in cells[row - 1][2]:
                cell.set_facecolor("#fdd0a2")
                cell.set_height(cell.get_height() * 1.8)

    ax = axes[1][1]
    agents = data["adherence"]
    ax.barh([a["gen_ai_agent_name"] for a in agents], [a.get("mean", 0) for a in agents], color="#31a354")
    ax.set_xlim(0, 1.05)
    ax.set_title("Plan adherence by agent (mean LCS / plan length)")
    for i, a in enumerate(agents):
        ax.text(min(a.get("mean", 0), 0.8) + 0.02, i, f"{a.get('mean', 0):.2f} over {int(a.get('runs', 0))} runs",
                va="center", fontsize=9)

    ax = axes[1][2]
    ax.bar(names, [r.get("energy_wh", 0) for r in tenants], color="#636363", label="Wh")
    ax.set_yscale("log")
    ax.set_title("Estimated energy by tenant (Wh, log scale)")
    for i, r in enumerate(tenants):
        ax.text(i, r.get("energy_wh", 0), f"{r.get('carbon_g', 0):.2f} gCO2e", ha="center", va="bottom", fontsize=8)

    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def terminal(text: str, out: Path) -> None:
    lines = [line for line in text.splitlines() if "\r" not in line]  # progress bar redraws, if captured
    height = 0.155 * len(lines) + 0.3
    fig = plt.figure(figsize=(12.5, height))
    fig.patch.set_facecolor("#1e1e1e")
    fig.text(0.01, 1 - 0.15 / height, "\n".join(lines), family="monospace", fontsize=8.6, color="#e6e6e6", va="top")
    fig.savefig(out, dpi=90, facecolor=fig.get_facecolor())
    plt.close(fig)


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    data = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[3])
    out.mkdir(parents=True, exist_ok=True)
    charts(data, out / "demo-slis.png")
    terminal(Path(sys.argv[2]).read_text(), out / "demo-report.png")
    print(f"wrote {out / 'demo-slis.png'} and {out / 'demo-report.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
