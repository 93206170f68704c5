"""How long the `harness` command takes to answer, beside `python -c pass` in the same run.

    python benchmarks/cli.py [--repeat 5] [--harness PATH]

Sets up a harness home holding one real finished run (`harness demo --sandbox local`, once),
then times, as the median of `--repeat` runs of a fresh process each: `--help`, `runs`,
`show RUN`, and the input errors a person meets first (a missing packet or checkout, an
unknown run for show/resume/answer, a bad packet for validate, a bad eval option). Prints
seconds per command and its ratio to `python -c pass`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def median_s(argv: list[str], env: dict[str, str], cwd: Path, repeat: int, expect: int | None) -> tuple[float, int]:
    times, code = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        code = proc.returncode
    return statistics.median(times), code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--harness", default=str(Path(sys.executable).parent / "harness"),
                        help="the harness console script to time (default: the one beside this python)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    env = {**os.environ, "HARNESS_HOME": str(work / "home")}
    env.pop("PYTHONPATH", None)
    h = args.harness
    try:
        demo = subprocess.run([h, "demo", "--sandbox", "local", "--clean"], env=env, cwd=work,
                              capture_output=True, text=True)
        if demo.returncode != 0:
            raise SystemExit(f"demo failed ({demo.returncode}):\n{demo.stdout[-3000:]}\n{demo.stderr[-3000:]}")
        (run_id,) = [p.name for p in (work / "home" / "runs").iterdir()]
        (work / "bad.json").write_text('{"component_context": {"model_family": "x"}}')
        cases: list[tuple[str, list[str], int | None]] = [
            ("python -c pass", [sys.executable, "-c", "pass"], 0),
            ("harness --help", [h, "--help"], 0),
            ("harness runs", [h, "runs"], 0),
            ("harness show RUN", [h, "show", run_id], 0),
            ("harness show RUN --no-diff", [h, "show", run_id, "--no-diff"], 0),
            ("error: run, missing packet and repo", [h, "run", "--packet", "nope.json", "--repo", "nope",
                                                     "--sandbox", "local", "--model", "human"], 2),
            ("error: validate, bad packet", [h, "validate", "bad.json"], 2),
            ("error: show, unknown run", [h, "show", "no-such-run"], 2),
            ("error: resume, unknown run", [h, "resume", "no-such-run"], 2),
            ("error: answer, unknown run", [h, "answer", "no-such-run", "--option", "1"], 2),
            ("error: resume, finished run", [h, "resume", run_id], 2),
            ("error: answer, finished run", [h, "answer", run_id, "--option", "1"], 2),
            ("error: eval, unknown suite", [h, "eval", "--model", "oracle", "--suite", "no-such-suite",
                                            "--sandbox", "local"], 2),
            ("error: eval, no model", [h, "eval", "--sandbox", "local"], 2),
            ("error: doctor, missing packet", [h, "doctor", "--packet", "nope.json", "--repo", "nope",
                                               "--sandbox", "local"], 2),
        ]
        rows = [(name, *median_s(argv, env, work, args.repeat, expect)) for name, argv, expect in cases]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = rows[0][1]
    width = max(len(name) for name, *_ in rows)
    print(f"{'command':<{width}}  {'median s':>8}  {'x python -c pass':>16}  exit   (n={args.repeat})")
    for (name, seconds, code), (_, _, expect) in zip(rows, cases):
        note = "" if expect is None or code == expect else f"  (expected exit {expect})"
        print(f"{name:<{width}}  {seconds:8.3f}  {seconds / base:16.1f}  {code:4d}{note}")
    print(f"slowest harness command: {max(s for _, s, _ in rows[1:]):.3f} s")


if __name__ == "__main__":
    main()
