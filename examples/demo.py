"""`make demo`: simulated LLM fleet -> instrumented multi-tenant app -> otelcol-llmotel sidecar -> Prometheus -> report.

    .venv/bin/python examples/demo.py [--speed 4] [--keep] [--json report.json]

1. the fleet simulator serves examples/e2e/demo_scenario.yaml on loopback (noisy neighbour, a regional rollout,
   four tenants on OpenAI and Anthropic APIs);
2. otelcol-llmotel (collector/build, `make collector-build`) runs as a sidecar: OTLP in, `llm_sli` SLIs out;
3. a real Prometheus (the Debian package's binary) scrapes the sidecar every second;
4. examples/multi_tenant_app.py (`import llmotel.auto`, real openai/anthropic clients, two agents) sends the load,
   with a progress bar; half-way the rollout reaches eu-west-1;
5. the SLI report is read back from Prometheus with PromQL and printed.

Every process listens on 127.0.0.1 only and is ended when the demo ends, also on Ctrl-C or failure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "e2e"))

from report import collect, render_text  # noqa: E402
from stack import (  # noqa: E402
    SIDECAR_CONFIG,
    Stack,
    StackError,
    app_env,
    collector_binary,
    free_port,
    python,
    rollout_after,
    sidecar_env,
    wait_until,
)

from llmotel_sim import SimServer  # noqa: E402
from llmotel_sim.config import load_scenario  # noqa: E402
from llmotel_sim.loadgen import LoadSpec, plan  # noqa: E402

SCENARIO = HERE / "e2e" / "demo_scenario.yaml"


def say(msg: str) -> None:
    print(msg, flush=True)


def ensure_collector() -> None:
    """Build otelcol-llmotel with `make collector-build` when it is missing (`make demo` has done it already)."""
    if collector_binary() is None:
        say("[0/5] building otelcol-llmotel (make collector-build; a few minutes the first time)")
        if subprocess.run(["make", "-C", str(HERE.parent), "collector-build"]).returncode != 0:
            raise StackError("`make collector-build` failed (see above)")


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    ensure_collector()
    config = load_scenario(SCENARIO)
    speed = args.speed or config.speed
    if args.duration:
        config.load["duration_s"] = args.duration
    expected = config.expected
    with Stack(keep_workdir=args.keep) as stack, SimServer(config, speed=speed) as sim:
        say(f"[1/5] fleet simulator  {sim.base_url}  scenario {config.name!r} at {speed:g}x real time")
        otlp_http, otlp_grpc, exporter = free_port(), free_port(), free_port()
        # 1 s slots: the noisy-neighbour test needs several busy slots while the bully runs (~15 s of the demo).
        env = sidecar_env(otlp_http, otlp_grpc, exporter, flush="2s", window="3m", slots=180, speed=speed)
        stack.collector("collector", SIDECAR_CONFIG, env, ready_url=f"http://127.0.0.1:{exporter}/metrics")
        say(f"[2/5] otelcol-llmotel  OTLP http://127.0.0.1:{otlp_http}  SLIs http://127.0.0.1:{exporter}/metrics")
        prom = stack.demo_prometheus([f"127.0.0.1:{exporter}"])
        say(f"[3/5] prometheus       {prom.url}")
        duration_wall = float(config.load["duration_s"]) / speed
        say(f"[4/5] multi-tenant app (examples/multi_tenant_app.py): ~{duration_wall:.0f}s of traffic")
        planned = len(plan(LoadSpec.from_config(config), config.seed))
        rollout = rollout_after(sim, expected["rollout_region"], expected["rollout_revision"], planned // 2)
        app = stack.spawn(
            "app",
            [python(), str(HERE / "multi_tenant_app.py"), "--base-url", sim.base_url, "--scenario", str(SCENARIO),
             "--speed", str(speed), "--duration", str(config.load["duration_s"])],
            env=app_env(f"http://127.0.0.1:{otlp_http}", "llmotel-demo-app"),
            stdout=subprocess.PIPE,
            stderr=sys.stderr,
        )
        out, _ = app.communicate()
        rollout.set()
        if app.returncode != 0:
            raise StackError(f"the app failed with code {app.returncode}")
        sent: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        say(f"[5/5] waiting for the SLIs of {sent['llm_calls']} LLM calls and "
            f"{sum(sent['agent_runs'].values())} agent runs to reach Prometheus")

        def landed() -> bool:
            calls = prom.value("sum(llmotel_sli_requests_total)") or 0
            runs = prom.value("sum(llmotel_sli_plan_adherence_count)") or 0
            return bool(calls >= sent["llm_calls"] and runs >= sum(sent["agent_runs"].values()))

        try:
            wait_until(landed, 60, "the SLIs in Prometheus", interval=0.5)
        except StackError:
            if not args.keep:
                raise
            say("  (not all SLIs arrived; reporting what is there)")
        time.sleep(2.5)  # one more flush + scrape, so the window gauges include the last calls
        data = collect(prom, speed=speed)
        data["sent"] = sent
        data["wall_s"] = time.perf_counter() - t0
        print(render_text(data, prom_url=prom.url, keep=args.keep), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(data, indent=1, default=str))
        if args.keep:
            say(f"Stack kept running (Prometheus {prom.url}); Ctrl-C to end it. Logs in {stack.workdir}")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="llmotel end-to-end demo (everything on loopback)")
    parser.add_argument("--speed", type=float, default=None, help="simulator speed factor (default: the scenario's)")
    parser.add_argument("--duration", type=float, default=None, help="simulated seconds of load (default 120)")
    parser.add_argument("--keep", action="store_true", help="keep the stack running after the report (Ctrl-C ends)")
    parser.add_argument("--json", default=None, help="also write the report data to this JSON file")
    args = parser.parse_args()
    try:
        return run(args)
    except KeyboardInterrupt:
        print("\ninterrupted: every process the demo started has been ended", file=sys.stderr)
        return 130
    except StackError as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
