"""Report numbers on a known set of rows, the terminal table, and the HTML page in headless Chromium."""

import io
import shutil
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from harness.evals.report import render_terminal, summarize
from harness.evals.report_html import render_html

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _rows(tmp_path: Path) -> list[dict]:
    # model A passes t1 3/3, t2 1/3, t3 0/3; model B passes t1 2/3, t2 0/3, t3 0/3.
    plan = {"A": {"t1": [1, 1, 1], "t2": [1, 0, 0], "t3": [0, 0, 0]},
            "B": {"t1": [1, 0, 1], "t2": [0, 0, 0], "t3": [0, 0, 0]}}
    kinds = {"t1": "port", "t2": "seeded_bug", "t3": "must_ask"}
    rows = []
    for model, tasks in plan.items():
        for task, results in tasks.items():
            for attempt, ok in enumerate(results):
                run_dir = tmp_path / "runs" / f"{model}-{task}-{attempt}"
                run_dir.mkdir(parents=True)
                (run_dir / "trajectory.jsonl").write_text("{}\n")
                rows.append({"task": task, "kind": kinds[task], "model": model, "attempt": attempt,
                             "outcome": "pass" if ok else "fail", "reasons": [] if ok else ["parity <red> & co"],
                             "turns": 4, "tokens": 1000, "cost_usd": 0.01 if model == "A" else 0.002,
                             "wall_s": 2.0, "run_dir": str(run_dir), "attempt_dir": str(run_dir),
                             "error_class": None if ok else ("limit_hit" if task == "t3" else "agent_failure")})
    return rows


def test_summary_numbers(tmp_path):
    s = summarize(_rows(tmp_path))
    a, b = s.models_summary["A"], s.models_summary["B"]
    assert (a.passes, a.n, b.passes, b.n) == (4, 9, 2, 9)
    assert a.ci[0] == pytest.approx(0.1888, abs=1e-3) and a.ci[1] == pytest.approx(0.7333, abs=1e-3)
    # pass@3: t1 certain, t2 certain (1 of 3 with k=3), t3 never -> 2/3.
    assert a.pass_at[3] == pytest.approx(2 / 3)
    assert a.pass_at[1] == pytest.approx(4 / 9)
    assert a.pass_hat[3] == pytest.approx(1 / 3)
    assert b.pass_at[3] == pytest.approx(1 / 3)
    assert a.by_kind == {"must_ask": (0, 3), "port": (3, 3), "seeded_bug": (1, 3)}
    assert a.errors == {"agent_failure": 2, "limit_hit": 3}
    assert a.total_cost == pytest.approx(0.09)
    (comp,) = s.comparisons
    assert comp.per_task["t1"] == pytest.approx(1 / 3)
    assert comp.task_wins == (2, 0, 1)
    assert comp.task_p == pytest.approx(0.5)
    assert (comp.attempts.a_only, comp.attempts.b_only, comp.attempts.both, comp.attempts.neither) == (2, 0, 2, 5)
    assert s.hardest(1)[0][0] == "t3"


def test_terminal_table(tmp_path):
    out = io.StringIO()
    render_terminal(summarize(_rows(tmp_path)), Console(file=out, width=200))
    text = out.getvalue()
    assert "44% (4/9)" in text and "22% (2/9)" in text
    assert "McNemar exact p=0.500" in text
    assert "Hardest tasks: t3" in text


def _chromium(html: Path, out_dir: Path) -> tuple[str, str, Path]:
    """Screenshot and DOM of a page; returns (dom, stderr log, screenshot path)."""
    profile = out_dir / "profile"
    shot = out_dir / "shot.png"
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--window-size=1300,2200"]
    uri = html.as_uri()
    shot_proc = subprocess.run(flags + [f"--screenshot={shot}", uri], capture_output=True, text=True, timeout=120)
    dom_proc = subprocess.run(flags + ["--dump-dom", uri], capture_output=True, text=True, timeout=120)
    return dom_proc.stdout, shot_proc.stderr + dom_proc.stderr, shot


def _console_errors(log: str) -> list[str]:
    return [line for line in log.splitlines()
            if "CONSOLE" in line and ("Uncaught" in line or "Error" in line)]


def test_html_report_renders_in_chromium_without_errors(tmp_path):
    html = render_html(summarize(_rows(tmp_path)), tmp_path / "report" / "index.html")
    text = html.read_text()
    assert "http://" not in text and "https://" not in text  # self-contained, no CDN
    assert text.count("<svg") == 3
    assert 'href="../runs/A-t1-0/trajectory.jsonl"' in text  # relative trajectory links
    assert "parity &lt;red&gt; &amp; co" in text  # escaped
    dom, log, shot = _chromium(html, tmp_path)
    assert 'data-report-ready="yes"' in dom, log[-2000:]
    assert not _console_errors(log), _console_errors(log)
    assert shot.is_file() and shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_console_error_detection_catches_a_broken_page(tmp_path):
    # The check above must be able to fail: a page that throws is caught.
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>undefinedFunction();</script></body></html>")
    dom, log, _ = _chromium(broken, tmp_path)
    assert "data-report-ready" not in dom
    assert _console_errors(log)
