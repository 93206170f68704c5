"""What the isolated verdict costs, against a plain pytest run of the same test in place.

    python benchmarks/verdict.py [--sandbox bwrap docker local] [--repeat 3]

The demo's gold VAE port in a run's worktree, judged two ways in turn (so load on the machine
falls on both alike), each timed as a median per sandbox:
- in place: `pytest <test> -v -s` in the run's own warm sandbox on the worktree;
- isolated (harness.verify.verdict): two trees, the test in a trusted sandbox and the port in
  its own, reached through a socket, with the harness's plugin.
Prints seconds per verdict, the verdict's own parts, and the ratio side by side.
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

IMAGE = "fastvideo-harness-sandbox:test"


def measure(kind: str, repeat: int, root: Path) -> tuple[list[float], list[float], dict[str, list[float]]]:
    ex = write_example_repo(root / f"example-{kind}")
    packet = ComponentContext.model_validate(json.loads(ex.packets["vae:parity-debug"].read_text()))
    ws = Workspace.create(ex.repo, f"bench-{kind}", official_ref_dir=ex.official_dir, root=root / "home")
    for rel, text in gold_files("vae").items():
        (ws.path / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws.path / rel).write_text(text)
    ws.checkpoint("gold port")
    options = {"image": IMAGE} if kind == "docker" else {}
    in_place: list[float] = []
    isolated: list[float] = []
    parts: dict[str, list[float]] = {}
    agent_sandbox = make_executor(kind, ws, run_id=f"bench-{kind}", **options)
    agent_sandbox.start()  # the run's sandbox is warm when the verdict runs
    try:
        for _ in range(repeat):
            t0 = time.monotonic()
            run = run_parity_test(agent_sandbox, packet.parity_test, root / "logs")
            in_place.append(time.monotonic() - t0)
            assert run.status == "non_skip_pass", run.summary_line()
            t0 = time.monotonic()
            verdict = run_verdict(ws, packet, lambda tree: make_executor(kind, tree, run_id=tree.run_id, **options),
                                  root / "logs", commit=ws.head())
            isolated.append(time.monotonic() - t0)
            assert verdict.run.status == "non_skip_pass", (verdict.run.summary_line(), verdict.problems)
            for name, seconds in verdict.seconds.items():
                parts.setdefault(name, []).append(seconds)
    finally:
        agent_sandbox.close()
    return in_place, isolated, parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox", nargs="+", default=["bwrap", "docker", "local"],
                        choices=("bwrap", "docker", "local"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-verdict-") as tmp:
        for kind in args.sandbox:
            in_place, isolated, parts = measure(kind, args.repeat, Path(tmp))
            rows.append((kind, statistics.median(in_place), statistics.median(isolated),
                         {k: statistics.median(v) for k, v in parts.items()}))
    print(f"verdict on the demo's gold VAE port, median of {args.repeat}")
    print(f"{'sandbox':<8} {'in place s':>11} {'isolated s':>11} {'ratio':>7}   isolated parts")
    for kind, a, b, parts in rows:
        detail = ", ".join(f"{k} {v:.2f}" for k, v in parts.items() if k != "total_s")
        print(f"{kind:<8} {a:11.2f} {b:11.2f} {b / a:6.2f}x   {detail}")


if __name__ == "__main__":
    main()
