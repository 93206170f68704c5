"""Live eval progress (ETA, per-model counts, attempts running now, pass rate, spend; plain
lines when not a terminal) and the whole-eval spend cap."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from harness.cli import app
from harness.evals.progress import SHOW_RUNNING, EvalProgress
from harness.evals.runner import AttemptJob, read_results


def _job(task: str, model: str, attempt: int) -> AttemptJob:
    return AttemptJob(task_dir=f"/suite/{task}", model=model, attempt=attempt, template="/t", attempt_dir="/a",
                      sandbox="local", image=None, gpus="none")


def _row(task: str, model: str, attempt: int, outcome: str, cost: float = 0.0) -> dict:
    return {"task": task, "model": model, "attempt": attempt, "outcome": outcome, "cost_usd": cost, "wall_s": 3.0}


def test_plain_lines_count_per_model_with_eta_running_and_spend():
    stream = io.StringIO()
    progress = EvalProgress(stream=stream, live=False)
    queued = [_job("t1", "a", 1), _job("t1", "b", 0), _job("t1", "b", 1)]
    progress.begin(4, [_row("t1", "a", 0, "pass", 0.25)], queued)
    progress.attempt_started(queued[0])
    progress.attempt_started(queued[1])
    assert progress.running_names()[0].startswith("t1 · a #1 (")
    progress.attempt_finished(_row("t1", "a", 1, "fail", 0.5))
    lines = stream.getvalue().splitlines()
    assert lines[0] == "eval: 3 attempts to run, 1 already done"
    assert lines[1].startswith("start t1 · a #1 | 1/4 done · 1 running · 2 queued")
    last = lines[-1]
    assert last.startswith("fail  t1 · a #1 (3.0 s) | 2/4 done · 1 running · 1 queued · pass 1/2 (50%) · spent $0.7500")
    assert "ETA ?" not in last  # one attempt finished in this run: the pace is known
    assert "a: 2/2 (pass 1, fail 1, error 0); b: 0/2 (pass 0, fail 0, error 0)" in last
    assert progress.running_names() == [n for n in progress.running_names() if n.startswith("t1 · b #0")]


def test_eta_is_unknown_until_an_attempt_of_this_run_finishes():
    progress = EvalProgress(stream=io.StringIO(), live=False)
    progress.begin(2, [_row("t", "a", 0, "pass")], [_job("t", "a", 1)])
    assert progress.eta_s() is None and "ETA ?" in progress.summary()


def test_live_panel_names_running_attempts_and_counts_the_rest():
    progress = EvalProgress(stream=io.StringIO(), live=False)
    jobs = [_job(f"task{n:02d}", "m", 0) for n in range(SHOW_RUNNING + 3)]
    progress.begin(len(jobs), [], jobs)
    for job in jobs:
        progress.attempt_started(job)
    progress.attempt_finished(_row("task00", "m", 0, "error"))
    console = Console(file=io.StringIO(), width=300)
    console.print(progress)
    panel = console.file.getvalue()
    assert "1/11 done · 10 running · 0 queued · pass 0/1 (0%)" in panel
    assert "task01 · m #0" in panel and "and 2 more" in panel and "task00 · m #0 (" not in panel
    assert "1/11" in panel and " m " in panel  # the per-model table


def _priced_script(path: Path) -> Path:
    """A scripted agent whose planner turn reports 2M input tokens: $2 at a price of 1,0."""
    done = {"text": "", "tool_calls": [{"name": "finish", "args": {"summary": "done"}}]}
    planner = {**done, "usage": {"input_tokens": 2_000_000, "output_tokens": 0}}
    path.write_text(yaml.safe_dump({"planner": [planner], "implementer": [done], "debugger": [done]}))
    return path


@pytest.mark.slow
def test_spend_cap_stops_new_attempts_and_a_higher_cap_continues(tmp_path):
    model = f"scripted:{_priced_script(tmp_path / 'priced.yaml')}"
    out = tmp_path / "out"
    args = ["eval", "--suite", "core", "--tasks", "ask-vae-motion-head", "--model", model, "--price", f"{model}=1,0",
            "--attempts", "2", "--workers", "1", "--sandbox", "local", "--max-debug-rounds", "0", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--max-total-usd", "1.5"])
    assert result.exit_code == 0, result.output
    (row,) = read_results(out)  # a runner ignoring the cap would have run both
    assert row["cost_usd"] == pytest.approx(2.0, rel=0.01)  # the --price reached the run itself
    assert re.search(r"stopped: spend cap \$1\.5 reached \(spent \$2\.\d{4}\); attempts not started: 1;",
                     result.output), result.output
    # Not a terminal: plain progress lines.
    assert f"start ask-vae-motion-head · {model} #0 | 0/2 done · 1 running · 1 queued" in result.output
    result = CliRunner().invoke(app, [*args, "--max-total-usd", "100", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert sorted(r["attempt"] for r in read_results(out)) == [0, 1] and "stopped" not in result.output


def test_on_a_terminal_the_panel_is_live(monkeypatch):
    import os
    import select

    master, slave = os.openpty()
    monkeypatch.setenv("COLUMNS", "200")  # one summary line, not wrapped
    with open(slave, "w", closefd=True) as tty:
        progress = EvalProgress(stream=tty)
        assert progress.live_mode  # chosen from the stream itself
        job = _job("t1", "a", 0)
        progress.begin(1, [], [job])
        progress.attempt_started(job)
        progress.attempt_finished(_row("t1", "a", 0, "pass", 0.1))
        progress.close()
    shown = b""
    while select.select([master], [], [], 0.5)[0]:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    text = shown.decode("utf-8", "replace")
    assert "1/1 done · 0 running · 0 queued · pass 1/1 (100%) · spent $0.1000" in text
    assert "\x1b[" in text and "start t1" not in text  # a redrawn panel, not plain lines
