"""Eval throughput and where an attempt's time goes: worker counts, the local pool against Ray,
scaling when turns wait on a model, the grading share; and the baselines on the whole suite.

    python benchmarks/evals.py pool      [--tasks GLOB] [--sandbox S] [--workers 1 2] [--attempts 1]
    python benchmarks/evals.py backends  [--tasks GLOB] [--sandbox S] [--workers 2]
    python benchmarks/evals.py scale     [--backend local ray spawn] [--delay 2] [--turns 4] [--workers 1 2 4]
                                         [--rounds 3]
    python benchmarks/evals.py grading   [--tasks GLOB] [--sandbox bwrap] [--workers 2]
    python benchmarks/evals.py baselines [--tasks GLOB] [--sandbox bwrap] [--workers 2]

`pool` runs the oracle with the local pool at each worker count and prints the time split:
runs against grading (`--tasks '*'` is the whole core suite). `backends` runs the same oracle
eval through the local pool and through a Ray instance started on this machine. `scale` is
bound by model latency: an OpenAI-compatible loopback server answers every call after a fixed
delay (the agent lists a folder `--turns` times, then raises the must-ask task's question, so
no test runs), each worker count gets `--rounds` attempts per worker (every worker busy all
along), attempts per minute are printed for each count and backend with the ratio to one
worker, and the start-ups are timed on their own, before the evals that then use them: Ray's
local instance, and the local pool's server that preloads what attempts import. `spawn` is the
local pool as it was before that server (a fresh interpreter per attempt), for comparison.
`grading` runs the oracle on the core suite (every task by default) and prints grading's share
of the attempts' time by task kind and in all (goal: at most 15 %), with what the grading did:
parity verdicts reused from the run, parity tests run again, hidden tests run.
`baselines` runs the oracle and the null agent on every task of the core suite (the tests run
one task of each kind) and exits 1 if the oracle misses a pass or the null agent gets one. Each
eval starts from an empty results directory (preparing tasks included); the preflight cache is
filled once first.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.evals.runner import EvalConfig, read_results, run_eval  # noqa: E402
from harness.evals.tasks import SUITES_DIR  # noqa: E402

QUICK_TASK = "ask-vae-motion-head"


def timed_eval(out: Path, spawn: bool = False, **settings) -> tuple[float, list[dict]]:
    """One eval from an empty results directory; `spawn`: the local pool starts each attempt
    in a fresh interpreter, as before its preloading server."""
    from harness.evals import local_pool

    preloaded = local_pool.attempt_context
    if spawn:
        local_pool.attempt_context = lambda models=(): get_context("spawn")
    try:
        start = time.monotonic()
        run_eval(EvalConfig(suite="core", out=out, **settings))
        return time.monotonic() - start, read_results(out)
    finally:
        local_pool.attempt_context = preloaded


def _first_local_process(model: str) -> None:
    """Start the local pool's server and one process from it: what the first attempt waits for."""
    from harness.evals.local_pool import attempt_context

    process = attempt_context([model]).Process(target=os.getpid)
    process.start()
    process.join()


def _passed(rows: list[dict]) -> str:
    return f"{sum(r['outcome'] == 'pass' for r in rows)}/{len(rows)} passed"


def _time_split(rows: list[dict]) -> str:
    runs = sum(float(r.get("wall_s") or 0) for r in rows)
    grading = sum(float(r.get("grade_s") or 0) for r in rows)
    reused = sum(bool((r.get("checks") or {}).get("parity_reused")) for r in rows)
    return (f"runs {runs:.1f} s, grading {grading:.1f} s: grading is {grading / max(runs + grading, 1e-9):.1%} "
            f"of the attempts' time ({reused} of {len(rows)} reused the run's verdict)")


def bench_pool(args, root: Path) -> None:
    times = {}
    for workers in args.workers:
        wall, rows = timed_eval(root / f"pool-{workers}", models=["oracle"], tasks_glob=args.tasks,
                                workers=workers, sandbox=args.sandbox, attempts=args.attempts)
        times[workers] = wall
        print(f"oracle, local pool, {args.sandbox} sandbox, --workers {workers}: {wall:7.1f} s, {_passed(rows)}; "
              f"{_time_split(rows)}", flush=True)
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


def loopback_model(delay_s: float, turns: int, hatch: dict[str, Any]):
    """An OpenAI-compatible server on 127.0.0.1: every call answers after `delay_s`; the first
    `turns` turns of a conversation list a folder, the next raises `hatch` (the task's question)."""
    from tests.fakes.openai_server import completion
    from tests.fakes.server import FakeServer, Reply

    def answer(body: Any) -> Reply:
        done = sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")
        call = ("list_dir", {"path": "."}) if done < turns else ("raise_escape_hatch", hatch)
        reply = completion(tool_calls=[call], model="bench-latency")
        reply.delay_s = delay_s
        return reply

    return FakeServer(Reply(500), refuse=answer)


def bench_scale(args, root: Path) -> None:
    task = yaml.safe_load((SUITES_DIR / "core" / QUICK_TASK / "task.yaml").read_text())
    hatch = {k: v for k, v in task["expected_hatch"].items() if k != "raised_by"}
    model = "openai:bench-latency"
    with loopback_model(args.delay, args.turns, hatch) as server:
        os.environ.update(OPENAI_BASE_URL=f"{server.url}/v1", OPENAI_API_KEY="loopback-no-key",
                          XDG_CACHE_HOME=str(root / "cache"))
        settings = dict(models=[model], prices={model: "0,0"}, tasks_glob=QUICK_TASK, sandbox=args.sandbox,
                        max_debug_rounds=0)
        start = time.monotonic()
        _first_local_process(model)  # before any eval starts it
        local_start = time.monotonic() - start
        timed_eval(root / "warm-up", attempts=1, workers=1, **settings)  # fills the preflight cache
        print(f"model latency {args.delay:g} s a call, {args.turns + 1} calls an attempt, {args.sandbox} sandbox, "
              f"{QUICK_TASK}", flush=True)
        for backend in args.backend:
            extra: dict[str, Any] = {}
            if backend == "local":
                print(f"local: start-up of the server that forks attempts (its imports, once per eval) "
                      f"{local_start:6.1f} s (not in the rates below)", flush=True)
            if backend == "spawn":
                extra = {"spawn": True}
            if backend == "ray":
                import ray

                start = time.monotonic()
                ray.init(include_dashboard=False, log_to_driver=False)
                print(f"ray: start-up of a local instance {time.monotonic() - start:6.1f} s (not in the rates below)",
                      flush=True)
                extra = {"backend": "ray", "cpus_per_task": 0.25, "memory_per_task_gb": 0.25}
            rates, steady = {}, {}
            for workers in args.workers:
                attempts = args.rounds * workers
                wall, rows = timed_eval(root / f"scale-{backend}-{workers}", attempts=attempts, workers=workers,
                                        **settings, **extra)
                rates[workers] = len(rows) / wall * 60
                # While the workers run: from the first attempt's start to the last one's end (the
                # eval's one-time set-up, preparing the tasks, left out).
                span = max(r["placement"]["ended_at"] for r in rows) - min(r["placement"]["started_at"] for r in rows)
                steady[workers] = len(rows) / span * 60
                print(f"{backend:5s} --workers {workers}: {attempts} attempts in {wall:6.1f} s = "
                      f"{rates[workers]:6.2f} attempts/min (set-up included), {steady[workers]:6.2f} attempts/min "
                      f"while the workers run, {_passed(rows)}", flush=True)
            for label, table in (("whole eval", rates), ("while the workers run", steady)):
                one = table[min(table)]
                print(f"{backend:5s} speed-up over {min(table)} worker, {label}: " + ", ".join(
                    f"{w} workers {r / one:.2f}x (goal >= {0.9 * w / min(table):.1f}x)" for w, r in table.items()),
                    flush=True)
            if backend == "ray":
                import ray

                ray.shutdown()


GRADING_GOAL = 0.15


def bench_grading(args, root: Path) -> None:
    wall, rows = timed_eval(root / "grading", models=["oracle"], tasks_glob=args.tasks, workers=args.workers[0],
                            sandbox=args.sandbox)
    print(f"oracle, {args.sandbox} sandbox, --workers {args.workers[0]}: {wall:7.1f} s, {_passed(rows)}")
    kinds = sorted({r["kind"] for r in rows})
    for label, mine in [(kind, [r for r in rows if r["kind"] == kind]) for kind in kinds] + [("all", rows)]:
        runs = sum(float(r.get("wall_s") or 0) for r in mine)
        grading = sum(float(r.get("grade_s") or 0) for r in mine)
        checks = [r.get("checks") or {} for r in mine]
        reused = sum(c.get("parity_reused") is True for c in checks)
        rerun = sum(c.get("parity_reused") is False for c in checks)
        hidden = sum("hidden_test" in c for c in checks)
        print(f"{label:11s} {len(mine):3d} attempts: runs {runs:7.1f} s, grading {grading:6.1f} s = "
              f"{grading / max(runs + grading, 1e-9):6.1%} of their time; parity verdicts reused {reused}, "
              f"run again {rerun}; hidden tests run {hidden}", flush=True)
    runs = sum(float(r.get("wall_s") or 0) for r in rows)
    grading = sum(float(r.get("grade_s") or 0) for r in rows)
    share = grading / max(runs + grading, 1e-9)
    print(f"grading share {share:.1%} (goal <= {GRADING_GOAL:.0%})")


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
    parser.add_argument("what", choices=["pool", "backends", "scale", "grading", "baselines"], nargs="?",
                        default="pool")
    parser.add_argument("--tasks", default=None, help="only tasks matching this glob ('*': the core suite; "
                        "default: one quick task, every task for grading and baselines)")
    parser.add_argument("--sandbox", default="bwrap", choices=["local", "bwrap", "docker"])
    parser.add_argument("--workers", type=int, nargs="+", default=None)
    parser.add_argument("--attempts", type=int, default=1, help="pool: attempts per task")
    parser.add_argument("--backend", nargs="+", default=["local", "ray"], choices=["local", "ray", "spawn"],
                        help="scale: spawn is the local pool with a fresh interpreter per attempt (as before)")
    parser.add_argument("--rounds", type=int, default=3, help="scale: attempts per worker")
    parser.add_argument("--delay", type=float, default=2.0, help="scale: seconds the model takes per call")
    parser.add_argument("--turns", type=int, default=4, help="scale: folder listings before the question")
    args = parser.parse_args()
    args.workers = args.workers or {"pool": [1, 2], "backends": [2], "scale": [1, 2, 4], "grading": [2],
                                    "baselines": [2]}[args.what]
    if args.what not in ("baselines", "grading"):
        args.tasks = args.tasks or QUICK_TASK
    with tempfile.TemporaryDirectory(prefix="eval-bench-") as tmp:
        {"pool": bench_pool, "backends": bench_backends, "scale": bench_scale, "grading": bench_grading,
         "baselines": bench_baselines}[args.what](args, Path(tmp))


if __name__ == "__main__":
    main()
