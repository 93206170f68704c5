"""Wall time of the eval suite with the oracle at --workers 1 and 2 (two workers must be faster).

    python benchmarks/evals.py [--tasks GLOB] [--sandbox local|bwrap|docker] [--workers 1 2 ...]

Each run starts from an empty results directory, so it includes writing the example and
preparing the tasks; attempts run in worker processes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from harness.evals.runner import EvalConfig, read_results, run_eval


def run_once(workers: int, tasks: str | None, sandbox: str, root: Path) -> tuple[float, int, int]:
    out = root / f"workers-{workers}"
    start = time.monotonic()
    run_eval(EvalConfig(suite="core", models=["oracle"], out=out, tasks_glob=tasks, workers=workers, sandbox=sandbox))
    wall = time.monotonic() - start
    rows = read_results(out)
    return wall, sum(r["outcome"] == "pass" for r in rows), len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=None, help="only tasks matching this glob")
    parser.add_argument("--sandbox", default="local", choices=["local", "bwrap", "docker"])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="eval-bench-") as tmp:
        times = {}
        for workers in args.workers:
            wall, passed, total = run_once(workers, args.tasks, args.sandbox, Path(tmp))
            times[workers] = wall
            print(f"oracle, {args.sandbox} sandbox, --workers {workers}: {wall:7.1f} s wall, {passed}/{total} passed",
                  flush=True)
    if 1 in times and len(times) > 1:
        for workers, wall in times.items():
            if workers != 1:
                print(f"speed-up with {workers} workers: {times[1] / wall:.2f}x")


if __name__ == "__main__":
    main()
