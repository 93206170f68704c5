"""What the preflight costs a run: its seconds against one parity-test run, per sandbox, the
first time and again on the same inputs (remembered); and the demo's harness share of wall time.

    python benchmarks/preflight.py [--sandbox local bwrap] [--repeat 2] [--no-demo]

On the bundled example (parity-debug VAE packet), each in the same warm sandbox: the preflight
with nothing remembered (interpreter, modules, paths; then pytest, torch, fastvideo and the
parity test's collection), the preflight of a second worktree on the same inputs (the slow half
remembered), and the harness's parity run. Prints seconds and the ratios preflight / parity run.
Then `harness demo` twice (bwrap when it works), with an empty preflight cache and then with
the first run's: wall time, the node table's harness overhead (time that is neither model nor
test), the preflight, and the harness's share of the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.contracts import load_packet
from harness.evals.fixtures import write_example_repo
from harness.sandbox.executors import make_executor
from harness.sandbox.preflight import run_preflight
from harness.sandbox.preflight_cache import PreflightCache
from harness.sandbox.pytest_runner import run_parity_test
from harness.sandbox.workspace import Workspace


def timed(call) -> tuple[float, object]:
    t0 = time.monotonic()
    result = call()
    return time.monotonic() - t0, result


def preflight_rows(work: Path, kinds: list[str], repeat: int) -> None:
    example = write_example_repo(work / "example")
    packet = load_packet(example.packets["vae:parity-debug"])
    for kind in kinds:
        cold, warm, test = [], [], []
        for i in range(repeat):
            cache = PreflightCache(work / f"cache-{kind}-{i}")
            for label, into in (("first", cold), ("again", warm)):
                ws = Workspace.create(example.repo, f"bench-{kind}-{i}-{label}", official_ref_dir=example.official_dir,
                                      root=work / "home")
                with make_executor(kind, ws) as ex:
                    seconds, checks = timed(lambda: run_preflight(ex, packet, repo=example.repo, cache=cache))
                    into.append(seconds)
                    if label == "first":
                        test.append(timed(lambda: run_parity_test(ex, packet.parity_test, work / "logs"))[0])
                failed = [c.name for c in checks if not c.ok]  # type: ignore[attr-defined]
                if failed:
                    raise SystemExit(f"{kind}: preflight failed: {failed}")
        c, w, t = statistics.median(cold), statistics.median(warm), statistics.median(test)
        print(f"{kind:6s} preflight first {c:6.2f}s  again (remembered) {w:5.2f}s  parity run {t:6.2f}s  "
              f"ratio first {c / t:4.2f}  again {w / t:5.1%}")


def demo_rows(work: Path) -> None:
    harness = Path(sys.executable).parent / "harness"
    env = {**os.environ, "HARNESS_HOME": str(work / "demo-home"), "XDG_CACHE_HOME": str(work / "demo-cache")}
    sandbox = "bwrap" if shutil.which("bwrap") else "local"
    for label in ("empty preflight cache", "preflight remembered"):
        before = set((work / "demo-home" / "runs").glob("*")) if (work / "demo-home" / "runs").is_dir() else set()
        wall, proc = timed(lambda: subprocess.run([str(harness), "demo", "--sandbox", sandbox, "--clean"], env=env,
                                                  cwd=work, capture_output=True, text=True))
        if proc.returncode != 0:  # type: ignore[attr-defined]
            raise SystemExit(f"demo failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")  # type: ignore[attr-defined]
        (run,) = set((work / "demo-home" / "runs").glob("*")) - before
        summary = json.loads((run / "summary.json").read_text())
        totals, nodes = summary["totals"], summary["nodes"]
        preflight = nodes["prepare_workspace"]["total_s"]
        harness_s = wall - totals["test_s"] - totals["model_s"]  # start-up and the example included
        print(f"demo ({sandbox}, {label}): wall {wall:6.2f}s = test {totals['test_s']:6.2f}s + harness "
              f"{harness_s:5.2f}s (graph overhead {totals['overhead_s']:5.2f}s, of it preflight and worktree "
              f"{preflight:5.2f}s)  harness share: of wall {harness_s / wall:5.1%}, of the graph's time "
              f"{totals['overhead_s'] / totals['total_s']:5.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox", nargs="*", default=["local", "bwrap"], help="none: only the demo")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--no-demo", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-preflight-"))
    try:
        preflight_rows(work, args.sandbox, args.repeat)
        if not args.no_demo:
            demo_rows(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
