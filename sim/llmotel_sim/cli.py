"""``llmotel-sim``: serve a simulated fleet, or drive a scenario's load through the real clients.

llmotel-sim serve [--scenario NAME|PATH] [--port 8000] [--speed 1] [--seed 1]
llmotel-sim load SCENARIO [--url http://127.0.0.1:8000] [--speed S] [--seed N] [--no-instrument]
llmotel-sim list
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import urllib.request
from typing import Any

from llmotel_sim.config import SCENARIO_DIR, ConfigError, default_config, load_scenario, resolve_config
from llmotel_sim.loadgen import LoadGenerator, LoadSpec, instrument_if_available
from llmotel_sim.server import SimApp, start_runner
from llmotel_sim.signatures import evaluate


def _serve(args: argparse.Namespace) -> int:
    config = resolve_config(args.scenario) if args.scenario else default_config()
    if args.speed is not None:
        config.speed = args.speed
    if args.seed is not None:
        config.seed = args.seed

    async def main() -> None:
        app = SimApp(config)
        runner = await start_runner(app, args.host, args.port)
        print(
            f"llmotel-sim: {config.name!r} on http://{args.host}:{runner.addresses[0][1]} "
            f"(speed {config.speed:g}, seed {config.seed})",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):  # a clean stop flushes profilers and closes sockets
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0


def _http_truth(base_url: str) -> Any:
    def fetch(request_id: str) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"{base_url}/truth/{request_id}", timeout=5) as resp:
                data: dict[str, Any] = json.load(resp)
                return data
        except OSError:
            return None

    return fetch


def _load(args: argparse.Namespace) -> int:
    from llmotel_sim.server import SimServer

    config = load_scenario(args.scenario)
    spec = LoadSpec.from_config(config)
    if args.instrument:
        if any(k.startswith("OTEL_EXPORTER_OTLP") for k in os.environ):
            # Export for real (OTLP, standard OTEL_* variables) and instrument every installed client.
            with contextlib.suppress(ImportError):
                import llmotel.auto  # noqa: F401
        used = instrument_if_available()
        print(f"llmotel-sim: instrumented with {', '.join(used) or 'nothing'}", file=sys.stderr)
    t0 = time.perf_counter()
    if args.url:
        speed = args.speed or config.speed
        gen = LoadGenerator(
            args.url.rstrip("/"),
            spec,
            args.seed or config.seed,
            speed,
            truth=_http_truth(args.url.rstrip("/")),
            progress=sys.stderr,
        )
        results = asyncio.run(gen.run())
    else:
        with SimServer(config, seed=args.seed, speed=args.speed) as sim:
            gen = LoadGenerator(
                sim.base_url, spec, sim.config.seed, sim.config.speed, truth=sim.app.truth, progress=sys.stderr
            )
            results = asyncio.run(gen.run())
    ok = sum(1 for r in results if r.ok)
    print(f"{config.name}: {len(results)} requests, {ok} ok, {time.perf_counter() - t0:.1f}s wall")
    status = 0
    if config.expected:
        for check in evaluate(config.expected, results):
            print(f"  {check}")
            status |= 0 if check.ok else 1
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                [r.__class__.__name__ and {k: getattr(r, k) for k in r.__slots__} for r in results], f, default=str
            )
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmotel-sim", description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve", help="serve a fleet on loopback until interrupted")
    serve.add_argument("--scenario", help="bundled scenario name or YAML path (default: the default fleet)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--speed", type=float, default=None)
    serve.add_argument("--seed", type=int, default=None)
    load = sub.add_parser("load", help="drive a scenario's tenants through the real clients")
    load.add_argument("scenario")
    load.add_argument("--url", help="an already running llmotel-sim (default: start one in-process)")
    load.add_argument("--speed", type=float, default=None)
    load.add_argument("--seed", type=int, default=None)
    load.add_argument("--json", help="write every request's client measurements and truth here")
    load.add_argument(
        "--no-instrument", dest="instrument", action="store_false", help="do not instrument the clients with llmotel"
    )
    sub.add_parser("list", help="list bundled scenarios")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "serve":
            return _serve(args)
        if args.cmd == "load":
            return _load(args)
        for path in sorted(SCENARIO_DIR.glob("*.yaml")):
            cfg = load_scenario(path)
            print(f"{path.stem:32s} {cfg.description.splitlines()[0] if cfg.description else ''}")
        return 0
    except ConfigError as exc:
        print(f"llmotel-sim: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
