"""The HTML report of a small real eval, clicked through in headless Chromium: from a failed
attempt to its grader's reasons and diff; the by-kind chart has axes, values and intervals;
the hardest tasks are per model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.evals.report import load_summary
from harness.evals.report_attempts import attempt_anchor
from harness.evals.report_html import render_html

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The module's eval (up to 900 s on a busy machine) counts against the first test's time limit.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def small_eval(tmp_path_factory) -> Path:
    """A seeded-bug task, once by the null baseline (fails) and once by the oracle (passes)."""
    out = tmp_path_factory.mktemp("eval") / "results"
    done = subprocess.run([str(Path(sys.executable).parent / "harness"), "eval", "--suite", "core",
                           "--model", "null", "--model", "oracle", "--tasks", "bug-vae-crop", "--sandbox", "local",
                           "--max-debug-rounds", "0", "--out", str(out), "--no-progress"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail("chromium is not installed (scripts/test.sh installs it)", pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def test_a_failed_attempt_opens_its_grader_reasons_and_diff(small_eval, browser, tmp_path):
    rows = {r["model"]: r for r in map(json.loads, (small_eval / "results.jsonl").read_text().splitlines())}
    failed, passed = rows["null"], rows["oracle"]
    assert (failed["outcome"], passed["outcome"]) == ("fail", "pass")
    html = render_html(load_summary(small_eval), tmp_path / "report" / "index.html")
    assert "http://" not in html.read_text() and "https://" not in html.read_text()

    page = browser.new_page(viewport={"width": 1300, "height": 1400})
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(html.as_uri())
    section = page.locator(f"#{attempt_anchor(failed)}")
    assert not section.is_visible()  # hidden until its link is followed

    page.click("#attempts tr:has(span.fail) a.details")
    assert page.url.endswith(f"#{attempt_anchor(failed)}")
    assert section.is_visible()
    reasons = section.locator("ul.reasons").inner_text()
    assert failed["reasons"] and all(reason in reasons for reason in failed["reasons"])
    diff = section.locator("pre.diff")
    assert diff.is_visible()
    # The null baseline only touches PORT_STATUS.md; the diff shows that file's real changes.
    assert "PORT_STATUS.md" in diff.inner_text() and section.locator("pre.diff span.add").count() > 0
    log = section.locator("pre.parity-log").inner_text()  # the tail of the verdict's log
    assert "test_tinyvid_vae_parity" in log and "decode_latents: assert_close FAILED" in log
    assert "parity_status" in section.locator("pre.handoff").inner_text()
    call = section.locator("details.call").first
    assert call.is_visible() and not call.locator("pre").is_visible()  # tool calls start collapsed
    call.locator("summary").click()
    assert call.locator("pre").is_visible()

    page.click(f"#{attempt_anchor(failed)} a[href='#attempts']")
    page.click("#attempts tr:has(span.pass) a.details")
    other = page.locator(f"#{attempt_anchor(passed)}")
    assert other.is_visible() and not section.is_visible()
    # The oracle's fix of the seeded bug is in its diff, and not in the null baseline's.
    assert "b/fastvideo/models/vaes/tinyvid.py" in other.locator("pre.diff").inner_text()
    assert "b/fastvideo/models/vaes/tinyvid.py" not in diff.inner_text()
    assert not errors, errors


def test_by_kind_chart_has_axes_values_and_intervals_and_hardest_is_per_model(small_eval, browser, tmp_path):
    html = render_html(load_summary(small_eval), tmp_path / "report.html")
    page = browser.new_page()
    page.goto(html.as_uri())
    chart = page.locator("svg[aria-label='success by task kind']")
    texts = chart.locator("text").all_text_contents()
    assert "success rate" in texts and "0%" in texts and "100%" in texts and "seeded_bug" in texts
    assert sorted(chart.locator("text.kind-value").all_text_contents()) == ["0/1", "1/1"]
    assert chart.locator("line.ci").count() == chart.locator("rect.kind-bar").count() == 2  # one whisker a bar
    hardest = [row.split("\t") for row in page.locator("#hardest tbody tr").all_inner_texts()]
    assert [(r[0], r[3]) for r in hardest] == [("null", "0%"), ("oracle", "100%")]
