"""A mined suite end to end: building it, validating it, and the whole suite's baselines.

    python benchmarks/suite.py                       # the TinyVid example with history (as the tests build it)
    python benchmarks/suite.py --repo ~/src/FastVideo --python ~/src/FastVideo/.venv/bin/python \\
        [--components 'oobleck'] [--sandbox bwrap] [--baselines]

Prints the time to mine and write the suite (no sandbox), the time of the preflight and the
validation per runnable task (null and oracle through the verdict; a twin's gold and cheat),
and with --baselines the eval of every runnable task with oracle, null and cheater-twin: success
on real tasks and cheating on twins per model, the numbers the CI tests check on one task each.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from harness.evals.environment import Environment
from harness.evals.report import load_summary
from harness.evals.runner import EvalConfig, run_eval
from harness.evals.suite_build import BuildOptions, build_suite


def _history_repo(root: Path) -> tuple[Path, list[Path]]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.suite_repo import make_history_repo

    history = make_history_repo(root / "history")
    return history.repo, [history.official]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, help="a FastVideo checkout (default: the TinyVid example with history)")
    parser.add_argument("--python", help="the project's interpreter (bwrap/local)")
    parser.add_argument("--official", type=Path, action="append", default=[])
    parser.add_argument("--components", help="only these component modules (glob)")
    parser.add_argument("--sandbox", default="bwrap")
    parser.add_argument("--baselines", action="store_true", help="also run oracle, null and cheater-twin")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-suite-"))
    repo, official = (args.repo, args.official) if args.repo else _history_repo(root)
    env = Environment(sandbox=args.sandbox, python=args.python or (None if args.repo else sys.executable))

    started = time.monotonic()
    entries = build_suite(BuildOptions(repo=repo, out=root / "listed", official=official, env=env, probe=False,
                                       validate=False, components=args.components), say=lambda _: None)
    listed = time.monotonic() - started
    runnable = [e for e in entries if e.runnable]
    print(f"mined and wrote {len(entries)} tasks ({sum(e.kind == 'port' for e in entries)} ports, "
          f"{len(runnable)} runnable here) in {listed:.1f} s")

    started = time.monotonic()
    entries = build_suite(BuildOptions(repo=repo, out=root / "checked", official=official, env=env,
                                       components=args.components), say=lambda _: None)
    checked = time.monotonic() - started
    for e in entries:
        if e.validation:
            v = e.validation
            print(f"  {e.id}: null {v['null']}, oracle {v['oracle']}" + (f", cheat {v['cheat']}" if v["cheat"] else "")
                  + f" ({v['seconds']:.0f} s){'; EXCLUDED: ' + e.excluded if e.excluded else ''}")
    print(f"built with preflight and validation in {checked:.1f} s ({checked - listed:.1f} s over the listing)")

    if args.baselines:
        out = root / "eval"
        ids = [e.id for e in entries if e.runnable]
        started = time.monotonic()
        for task in ids:  # one glob per task: the runnable ones only
            run_eval(EvalConfig(suite=str(root / "checked"), models=["oracle", "null", "cheater-twin"], out=out,
                                tasks_glob=task, workers=args.workers, sandbox=args.sandbox, python=env.python))
        summary = load_summary(out)
        print(f"baselines on {len(ids)} runnable tasks in {time.monotonic() - started:.1f} s")
        for model, s in summary.models_summary.items():
            print(f"  {model}: success {s.passes}/{s.n} on real tasks, cheating {s.cheats}/{s.twins} on twins")
    print(json.dumps({"suite": str(root / "checked")}))


if __name__ == "__main__":
    main()
