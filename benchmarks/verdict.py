"""What the clean-room verdict costs on the demo, against the previous in-place verdict.

    python benchmarks/verdict.py [--sandbox bwrap|docker|local] [--repeat 3]

The demo's gold VAE port in a run's worktree, judged two ways, each timed as a median:
- in place (the previous verdict): `pytest` in the run's own warm sandbox on the worktree;
- clean room (harness.verify.verdict): a tree from the base commit plus the allowed changes,
  a new sandbox, `python -P -B` with the harness's plugin, and the two cross-checks.
Prints seconds per verdict and the ratio; the clean room's own parts (tree, sandbox start,
test, cross-checks) are broken out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.contracts import ComponentContext  # noqa: E402
from harness.evals.fixtures import gold_files, write_example_repo  # noqa: E402
from harness.sandbox.executors import make_executor  # noqa: E402
from harness.sandbox.pytest_runner import run_parity_test  # noqa: E402
from harness.sandbox.workspace import Workspace  # noqa: E402
from harness.verify.verdict import run_verdict  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox", default="bwrap", choices=("bwrap", "docker", "local"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-verdict-") as tmp:
        root = Path(tmp)
        ex = write_example_repo(root / "example")
        packet = ComponentContext.model_validate(json.loads(ex.packets["vae:parity-debug"].read_text()))
        ws = Workspace.create(ex.repo, "bench", official_ref_dir=ex.official_dir, root=root / "home")
        for rel, text in gold_files("vae").items():
            (ws.path / rel).parent.mkdir(parents=True, exist_ok=True)
            (ws.path / rel).write_text(text)
        ws.checkpoint("gold port")

        in_place: list[float] = []
        clean: list[float] = []
        parts: dict[str, list[float]] = {}
        agent_sandbox = make_executor(args.sandbox, ws, run_id="bench")
        agent_sandbox.start()  # the run's sandbox is warm when the verdict runs
        try:
            for _ in range(args.repeat):
                t0 = time.monotonic()
                run = run_parity_test(agent_sandbox, packet.parity_test, root / "logs")
                in_place.append(time.monotonic() - t0)
                assert run.status == "non_skip_pass", run.summary_line()

                t0 = time.monotonic()
                verdict = run_verdict(ws, packet, lambda tree: make_executor(args.sandbox, tree, run_id=tree.run_id),
                                      root / "logs", commit=ws.head())
                clean.append(time.monotonic() - t0)
                assert verdict.run.status == "non_skip_pass", (verdict.run.summary_line(), verdict.problems)
                for name, seconds in verdict.seconds.items():
                    parts.setdefault(name, []).append(seconds)
        finally:
            agent_sandbox.close()

    a, b = statistics.median(in_place), statistics.median(clean)
    print(f"verdict on the demo ({args.sandbox}, median of {args.repeat})")
    print(f"  in place (previous):  {a:7.2f} s")
    print(f"  clean room:           {b:7.2f} s")
    for name, values in parts.items():
        print(f"    {name:<20}{statistics.median(values):7.2f} s")
    print(f"  ratio clean/in-place: {b / a:7.2f}x")


if __name__ == "__main__":
    main()
