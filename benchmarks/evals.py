"""Eval throughput: worker counts, the local pool against Ray, and scaling when turns wait.

    python benchmarks/evals.py pool      [--tasks GLOB] [--sandbox S] [--workers 1 2]
    python benchmarks/evals.py backends  [--tasks GLOB] [--sandbox S] [--workers 2]
    python benchmarks/evals.py latency   [--backend local|ray] [--sleep 3] [--turns 3] [--attempts 4] [--workers 1 2 4]

`pool` runs the oracle with the local pool at each worker count. `backends` runs the same
oracle eval through the local pool and through a Ray instance started on this machine.
`latency` runs a scripted agent whose every implementer turn waits a fixed time (it runs
`sleep` in the sandbox, standing in for a slow model), so attempts are bound by waiting, not
CPU, and throughput should grow with workers. Each run starts from an empty results
directory (writing the example and preparing tasks included). Ratios are printed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

from harness.evals.runner import EvalConfig, read_results, run_eval

QUICK_TASK = "ask-vae-motion-head"


def timed_eval(out: Path, **settings) -> tuple[float, list[dict]]:
    start = time.monotonic()
    run_eval(EvalConfig(suite="core", out=out, **settings))
    return time.monotonic() - start, read_results(out)


def _passed(rows: list[dict]) -> str:
    return f"{sum(r['outcome'] == 'pass' for r in rows)}/{len(rows)} passed"


def bench_pool(args, root: Path) -> None:
    times = {}
    for workers in args.workers:
        wall, rows = timed_eval(root / f"pool-{workers}", models=["oracle"], tasks_glob=args.tasks,
                                workers=workers, sandbox=args.sandbox)
        times[workers] = wall
        print(f"oracle, local pool, {args.sandbox} sandbox, --workers {workers}: {wall:7.1f} s, {_passed(rows)}",
              flush=True)
    base = times.get(min(times))
    for workers, wall in times.items():
        if workers != min(times):
            print(f"speed-up of {workers} workers over {min(times)}: {base / wall:.2f}x")


def bench_backends(args, root: Path) -> None:
    workers = args.workers[0]
    times = {}
    for backend in ("local", "ray"):
        extra = {"backend": "ray", "cpus_per_task": 0.5} if backend == "ray" else {}
        wall, rows = timed_eval(root / backend, models=["oracle"], tasks_glob=args.tasks, workers=workers,
                                sandbox=args.sandbox, **extra)
        times[backend] = wall
        print(f"oracle, {backend} backend, --workers {workers}: {wall:7.1f} s, {_passed(rows)}", flush=True)
    print(f"Ray / local pool wall time: {times['ray'] / times['local']:.2f}x (Ray start-up and shipping included)")


def waiting_script(path: Path, turns: int, sleep_s: float) -> str:
    done = {"text": "", "tool_calls": [{"name": "finish", "args": {"summary": "done"}}]}
    wait = {"text": "waiting", "tool_calls": [{"name": "run", "args": {"command": f"sleep {sleep_s}"}}]}
    path.write_text(yaml.safe_dump({"planner": [done], "implementer": [wait] * turns + [done], "debugger": [done]}))
    return f"scripted:{path}"


def bench_latency(args, root: Path) -> None:
    model = waiting_script(root / "waiting.yaml", args.turns, args.sleep)
    extra = {"backend": "ray", "cpus_per_task": 0.25, "memory_per_task_gb": 0.25} if args.backend == "ray" else {}
    rates = {}
    for workers in args.workers:
        wall, rows = timed_eval(root / f"latency-{args.backend}-{workers}", models=[model], tasks_glob=QUICK_TASK,
                                attempts=args.attempts, workers=workers, sandbox=args.sandbox, max_debug_rounds=0,
                                **extra)
        rates[workers] = len(rows) / wall * 60
        print(f"{args.turns} turns x {args.sleep:g} s wait, {args.attempts} attempts, {args.backend} backend, "
              f"--workers {workers}: {wall:7.1f} s, {rates[workers]:.2f} attempts/min", flush=True)
    base = min(rates)
    for workers, rate in rates.items():
        if workers != base:
            print(f"throughput of {workers} workers / {base}: {rate / rates[base]:.2f}x (ideal {workers / base:.0f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["pool", "backends", "latency"], nargs="?", default="pool")
    parser.add_argument("--tasks", default=QUICK_TASK, help="only tasks matching this glob")
    parser.add_argument("--sandbox", default="local", choices=["local", "bwrap", "docker"])
    parser.add_argument("--workers", type=int, nargs="+", default=None)
    parser.add_argument("--backend", default="local", choices=["local", "ray"], help="for latency")
    parser.add_argument("--sleep", type=float, default=3.0, help="seconds each waiting turn takes")
    parser.add_argument("--turns", type=int, default=3, help="waiting turns per attempt")
    parser.add_argument("--attempts", type=int, default=4)
    args = parser.parse_args()
    args.workers = args.workers or {"pool": [1, 2], "backends": [2], "latency": [1, 2, 4]}[args.what]
    with tempfile.TemporaryDirectory(prefix="eval-bench-") as tmp:
        {"pool": bench_pool, "backends": bench_backends, "latency": bench_latency}[args.what](args, Path(tmp))


if __name__ == "__main__":
    main()
