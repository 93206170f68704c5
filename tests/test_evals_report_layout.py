"""The HTML report's layout in real headless Chromium at 900 and 1400 px: no horizontal scroll,
no overlapping labels, no plot of nothing, pass@k cells that say their k, run and grading times."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from harness.evals.report import summarize
from harness.evals.report_html import render_html

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LONG = "openai:a-rather-long-model-name-from-a-local-server-v2"

OVERLAPS = """() => {
  const boxes = (sel) => Array.from(document.querySelectorAll(sel)).map(e => e.getBoundingClientRect());
  const hit = (a, b) => a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  const out = [];
  for (const sel of ['svg text.point-label', 'svg text.kind-value', 'svg[aria-label="task by model heatmap"] text[text-anchor="end"]']) {
    const b = boxes(sel);
    for (let i = 0; i < b.length; i++) for (let j = i + 1; j < b.length; j++) if (hit(b[i], b[j])) out.push(sel + ' ' + i + '/' + j);
  }
  return out;
}"""


def _rows(costs: dict[str, float]) -> list[dict]:
    """Three tasks x three attempts per model; `oracle` and `null` pass and fail alike so their
    points coincide when their costs do."""
    rows = []
    for model, cost in costs.items():
        for task in ("port-vae-parity-debug", "bug-t5-relpos-direction", "ask-text-encoder-two-configs"):
            for attempt in range(3):
                ok = model != "null" or attempt == 0
                rows.append({"task": task, "kind": "port" if task.startswith("port") else "seeded_bug",
                             "model": model, "attempt": attempt, "outcome": "pass" if ok else "fail",
                             "reasons": [] if ok else ["grader's own parity run: debug_red " + "x" * 300],
                             "turns": 7, "tokens": 12000, "cost_usd": cost, "wall_s": 41.5, "grade_s": 6.25,
                             "error_class": None if ok else "agent_failure"})
    return rows


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail("chromium is not installed (scripts/test.sh installs it)", pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.mark.parametrize("width", [900, 1400])
def test_report_layout(browser, tmp_path: Path, width: int) -> None:
    free = render_html(summarize(_rows({"oracle": 0.0, "null": 0.0, LONG: 0.0})), tmp_path / "free.html")
    priced = render_html(summarize(_rows({"oracle": 0.02, "null": 0.02, LONG: 0.02, "anthropic:m": 0.05})),
                         tmp_path / "priced.html")
    page = browser.new_page(viewport={"width": width, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    for html in (free, priced):
        page.goto(html.as_uri())
        assert page.get_attribute("body", "data-report-ready") == "yes"
        scroll = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert scroll <= 0, f"{html.name} scrolls {scroll}px sideways at {width}px"
        assert page.evaluate(OVERLAPS) == [], html.name
        headers = page.locator("table.sortable").first.locator("th").all_inner_texts()
        assert {"mean run s", "mean grading s", "pass@k", "pass^k"} <= set(headers)
        for column in ("pass@k", "pass^k"):
            cells = page.locator("table.sortable").first.locator(f"tbody td:nth-child({headers.index(column) + 1})")
            assert all(re.fullmatch(r"[01]\.\d\d \(k=3\)", text) for text in cells.all_inner_texts())
        assert "grading" in page.locator("#time-split").inner_text()
        attempt_headers = page.locator("#attempts th").all_inner_texts()
        assert "run s" in attempt_headers and "grading s" in attempt_headers
    page.goto(free.as_uri())
    assert page.locator("#cost-note").is_visible()  # no plot of models all at $0
    assert page.locator('svg[aria-label="success vs cost"]').count() == 0
    page.goto(priced.as_uri())
    assert page.locator('svg[aria-label="success vs cost"]').is_visible()
    assert page.locator("svg text.point-label").count() == 4  # oracle's and null's labels both shown
    assert errors == []
