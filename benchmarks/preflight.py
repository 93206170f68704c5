"""What the preflight costs a run: its seconds against one parity-test run, per sandbox.

    python benchmarks/preflight.py [--sandbox local bwrap] [--repeat 2]

On the bundled example (parity-debug VAE packet): the preflight (interpreter, imports, torch,
fastvideo, paths, collection) and the harness's parity run, each timed in the same warm
sandbox. Prints seconds and the ratio preflight / parity run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from harness.contracts import load_packet
from harness.evals.fixtures import write_example_repo
from harness.sandbox.executors import make_executor
from harness.sandbox.preflight import run_preflight
from harness.sandbox.pytest_runner import run_parity_test
from harness.sandbox.workspace import Workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox", nargs="+", default=["local", "bwrap"])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-preflight-"))
    example = write_example_repo(work / "example")
    packet = load_packet(example.packets["vae:parity-debug"])
    for kind in args.sandbox:
        ws = Workspace.create(example.repo, f"bench-{kind}", official_ref_dir=example.official_dir, root=work / "home")
        with make_executor(kind, ws) as ex:
            pre, test = [], []
            for _ in range(args.repeat):
                t0 = time.monotonic()
                checks = run_preflight(ex, packet, repo=example.repo)
                pre.append(time.monotonic() - t0)
                t0 = time.monotonic()
                run_parity_test(ex, packet.parity_test, work / "logs")
                test.append(time.monotonic() - t0)
        p, t = statistics.median(pre), statistics.median(test)
        failed = [c.name for c in checks if not c.ok]
        print(f"{kind:6s} preflight {p:6.2f}s  parity run {t:6.2f}s  ratio {p / t:4.2f}  "
              f"({len(checks)} checks, failed: {failed or 'none'})")


if __name__ == "__main__":
    main()
