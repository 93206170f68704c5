"""Eval throughput: worker counts, the local pool against Ray, and scaling when turns wait;
and the baselines on the whole suite.

    python benchmarks/evals.py pool      [--tasks GLOB] [--sandbox S] [--workers 1 2]
    python benchmarks/evals.py backends  [--tasks GLOB] [--sandbox S] [--workers 2]
    python benchmarks/evals.py latency   [--backend local|ray] [--sleep 3] [--turns 3] [--attempts 4] [--workers 1 2 4]
    python benchmarks/evals.py baselines [--tasks GLOB] [--sandbox bwrap] [--workers 2]

`pool` runs the oracle with the local pool at each worker count. `backends` runs the same
oracle eval through the local pool and through a Ray instance started on this machine.
`latency` runs a scripted agent whose every implementer turn waits a fixed time (it runs
`sleep` in the sandbox, standing in for a slow model), so attempts are bound by waiting, not
CPU, and throughput should grow with workers. `baselines` runs the oracle and the null agent
on every task of the core suite (the tests run one task of each kind): it prints each model's
score, the slowest attempts, and every task where the oracle did not pass or the null agent did
not fail, and exits 1 if there is one. Each run starts from an empty results directory (writing
the example and preparing tasks included). Ratios are printed.
"""

from __future__ import annotations

import argparse
import sys
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


def bench_baselines(args, root: Path) -> None:
    wall, rows = timed_eval(root / "baselines", models=["oracle", "null"], tasks_glob=args.tasks,
                            workers=args.workers[0], sandbox=args.sandbox, max_debug_rounds=0)
    print(f"oracle and null, {args.sandbox} sandbox, --workers {args.workers[0]}: {wall:7.1f} s for {len(rows)} attempts")
    wrong = []
    for model, expected in (("oracle", "pass"), ("null", "fail")):
        mine = [r for r in rows if r["model"] == model]
        print(f"{model}: {_passed(mine)} (every attempt should {expected})")
        wrong += [(model, r["task"], r["outcome"], r["reasons"][:2]) for r in mine if r["outcome"] != expected]
    slowest = sorted(rows, key=lambda r: r["wall_s"] or 0, reverse=True)[:5]
    print("slowest attempts: " + ", ".join(f"{r['model']}/{r['task']} {r['wall_s']:.0f} s" for r in slowest))
    for model, task, outcome, reasons in wrong:
        print(f"WRONG: {model} on {task}: {outcome} {reasons}")
    if wrong:
        sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["pool", "backends", "latency", "baselines"], nargs="?", default="pool")
    parser.add_argument("--tasks", default=None, help="only tasks matching this glob (default: one quick "
                        "task; every task for baselines)")
    parser.add_argument("--sandbox", default=None, choices=["local", "bwrap", "docker"],
                        help="default: local; bwrap for baselines")
    parser.add_argument("--workers", type=int, nargs="+", default=None)
    parser.add_argument("--backend", default="local", choices=["local", "ray"], help="for latency")
    parser.add_argument("--sleep", type=float, default=3.0, help="seconds each waiting turn takes")
    parser.add_argument("--turns", type=int, default=3, help="waiting turns per attempt")
    parser.add_argument("--attempts", type=int, default=4)
    args = parser.parse_args()
    args.workers = args.workers or {"pool": [1, 2], "backends": [2], "latency": [1, 2, 4], "baselines": [2]}[args.what]
    if args.what != "baselines":
        args.tasks = args.tasks or QUICK_TASK
    args.sandbox = args.sandbox or ("bwrap" if args.what == "baselines" else "local")
    with tempfile.TemporaryDirectory(prefix="eval-bench-") as tmp:
        {"pool": bench_pool, "backends": bench_backends, "latency": bench_latency,
         "baselines": bench_baselines}[args.what](args, Path(tmp))


if __name__ == "__main__":
    main()
