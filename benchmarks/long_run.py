"""The harness's own cost per tool call over a long agent run, and the input tokens it sends.

    python benchmarks/long_run.py [--calls 450] [--window 32000] [--every 50]

One agent (the real loop, tools, trajectory and append-only progress log) runs a scripted
model that reads files of a small repository, `--calls` times, then finishes. The model costs
nothing, so the time per call is the harness's overhead: view building, tool execution,
trajectory and progress writes. Printed per window of `--every` calls: the mean overhead in ms,
the input tokens of the last request, and the ratio of the last window's overhead to the first
(flat overhead is a ratio near 1).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.agents.loop import Budget, run_agent  # noqa: E402
from harness.agents.models.base import AssistantTurn, Model, ToolCall, Usage, approx_tokens  # noqa: E402
from harness.agents.tools import ToolContext  # noqa: E402
from harness.agents.trajectory import Trajectory  # noqa: E402
from harness.sandbox.executors import make_executor  # noqa: E402
from harness.sandbox.workspace import Workspace  # noqa: E402


class ReadingModel(Model):
    """Reads the repo's files in turn, `calls` times, then finishes; records what each call saw."""

    name = "bench"

    def __init__(self, calls: int, window: int) -> None:
        super().__init__()
        self.calls, self.context_window = calls, window
        self.n = 0
        self.input_tokens: list[int] = []
        self.model_s = 0.0

    def _complete(self, role, system, messages, tools) -> AssistantTurn:
        t0 = time.perf_counter()
        self.input_tokens.append(sum(approx_tokens(m.model_dump_json()) for m in messages))
        self.n += 1
        if self.n > self.calls:
            call = ToolCall(id=f"c{self.n}", name="finish", args={"summary": "read everything"})
        else:
            call = ToolCall(id=f"c{self.n}", name="read_file", args={"path": f"src/mod{self.n % 20}.py"})
        self.model_s += time.perf_counter() - t0
        return AssistantTurn(tool_calls=[call], usage=Usage(input_tokens=self.input_tokens[-1], output_tokens=20))


def make_repo(root: Path) -> Path:
    repo = root / "repo"
    (repo / "src").mkdir(parents=True)
    for i in range(20):
        (repo / "src" / f"mod{i}.py").write_text("".join(f"def f{j}(x):\n    return x * {j}  # line {j}\n" for j in range(120)))
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "init"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    return repo


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=450)
    ap.add_argument("--window", type=int, default=32_000)
    ap.add_argument("--every", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ws = Workspace.create(make_repo(root), "bench", root=root / "home")
        ex = make_executor("local", ws)
        model = ReadingModel(args.calls, args.window)
        stamps: list[float] = []
        progress = root / "progress.jsonl"

        def save(messages) -> None:  # the graph's ProgressLog does the same append
            import json

            with open(progress, "a") as fh:
                fh.write(json.dumps(messages[-1].model_dump()) + "\n")
            stamps.append(time.perf_counter())

        t0 = time.perf_counter()
        result = run_agent("planner", model, ToolContext(ws, ex, "planner"), system="You read files.", task="Read.",
                           budget=Budget(max_turns=args.calls + 5), trajectory=Trajectory(root / "trajectory.jsonl"),
                           on_messages=save)
        total = time.perf_counter() - t0
        ex.close()
    assert result.reason == "finished", result.detail
    # Two saves per turn (after the model's turn and after its tools): one call per pair.
    per_call = [b - a for a, b in zip([t0, *stamps[1::2]], stamps[1::2])]
    print(f"{args.calls} calls, window {args.window} tokens, {total:.2f}s in all "
          f"(model {model.model_s * 1000:.0f} ms of it)")
    print(f"{'calls':>11} {'overhead ms/call':>17} {'input tokens (last)':>20}")
    windows = []
    for start in range(0, len(per_call), args.every):
        chunk = per_call[start:start + args.every]
        ms = statistics.mean(chunk) * 1000
        windows.append(ms)
        last = model.input_tokens[min(start + len(chunk), len(model.input_tokens)) - 1]
        print(f"{start + 1:>5}-{start + len(chunk):<5} {ms:>17.2f} {last:>20}")
    print(f"overhead ratio last/first window: {windows[-1] / windows[0]:.2f}")
    print(f"input tokens: max {max(model.input_tokens)}, window {args.window}")


if __name__ == "__main__":
    main()
