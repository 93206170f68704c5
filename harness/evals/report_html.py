"""A self-contained HTML report: inline CSS, inline SVG plots, a little inline JS; no network.

Plots: task x model heatmap, success vs mean cost per model, success by task kind. Also the
hardest tasks per model, the paired comparisons, and a per-attempt table; each attempt links
to its section (grader's reasons, diff, parity log tail, handoff, trajectory as turns; see
report_attempts.py) and (relatively) to its raw trajectory.
"""

from __future__ import annotations

import os
from harness.printable import html_text as escape
from pathlib import Path

from harness.evals.report import KINDS, Summary, time_line
from harness.evals.report_attempts import CSS as ATTEMPT_CSS, attempt_anchor, attempt_sections
from harness.evals.stats import wilson_interval

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f")

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px} h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;font-size:13px;max-width:100%} th,td{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f4f4f4;cursor:pointer} td.l,th.l{text-align:left} td{overflow-wrap:anywhere}
.pass{color:#1a7f37;font-weight:600} .fail{color:#c62828;font-weight:600} .error{color:#8a6d00;font-weight:600}
.plots{display:flex;flex-wrap:wrap;gap:24px} figure{margin:0;max-width:100%} figcaption{font-size:13px;color:#555}
svg{max-width:100%;height:auto} .note{color:#555;font-style:italic;max-width:420px}
input{margin:6px 0;padding:3px 6px;width:260px;max-width:90%} small{color:#666}
@media (max-width:1000px){table{font-size:11px} th,td{padding:2px 4px}}
"""

JS = """
(function(){
  function sortBy(table, col, num){
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    var dir = table.dataset.sortCol == col && table.dataset.sortDir == 'asc' ? 'desc' : 'asc';
    rows.sort(function(a, b){
      var x = a.cells[col].dataset.v || a.cells[col].textContent, y = b.cells[col].dataset.v || b.cells[col].textContent;
      var c = num ? (parseFloat(x) || 0) - (parseFloat(y) || 0) : x.localeCompare(y);
      return dir == 'asc' ? c : -c;
    });
    rows.forEach(function(r){ body.appendChild(r); });
    table.dataset.sortCol = col; table.dataset.sortDir = dir;
  }
  document.querySelectorAll('table.sortable').forEach(function(table){
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function(th, i){
      th.addEventListener('click', function(){ sortBy(table, i, th.dataset.num == '1'); });
    });
  });
  var filter = document.getElementById('filter');
  if (filter) filter.addEventListener('input', function(){
    var q = filter.value.toLowerCase();
    document.querySelectorAll('#attempts tbody tr').forEach(function(r){
      r.style.display = r.textContent.toLowerCase().indexOf(q) >= 0 ? '' : 'none';
    });
  });
  document.body.setAttribute('data-report-ready', 'yes');
})();
"""


def _color(rate: float) -> str:
    """Red (0) through yellow to green (1)."""
    r = int(220 - 170 * max(0.0, rate - 0.5) * 2) if rate > 0.5 else 220
    g = int(60 + 300 * rate) if rate <= 0.5 else 190
    return f"rgb({r},{min(g, 190)},70)"


def heatmap_svg(s: Summary) -> str:
    cell, left, top = 34, 230, 120
    w, h = left + cell * len(s.models) + 10, top + cell * len(s.tasks) + 10
    parts = [f'<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="task by model heatmap">']
    for j, m in enumerate(s.models):
        x = left + j * cell + cell / 2
        parts.append(f'<text x="{x}" y="{top - 6}" font-size="11" transform="rotate(-45 {x} {top - 6})">{escape(m[:28])}</text>')
    for i, t in enumerate(s.tasks):
        y = top + i * cell
        parts.append(f'<text x="{left - 6}" y="{y + cell / 2 + 4}" font-size="11" text-anchor="end">{escape(t)}</text>')
        for j, m in enumerate(s.models):
            p, n = s.cells.get((t, m), (0, 0))
            x = left + j * cell
            if n == 0:
                parts.append(f'<rect x="{x}" y="{y}" width="{cell - 2}" height="{cell - 2}" fill="#eee"/>')
                continue
            parts.append(f'<rect x="{x}" y="{y}" width="{cell - 2}" height="{cell - 2}" fill="{_color(p / n)}">'
                         f'<title>{escape(t)} / {escape(m)}: {p}/{n}</title></rect>')
            parts.append(f'<text x="{x + cell / 2 - 1}" y="{y + cell / 2 + 4}" font-size="10" text-anchor="middle" fill="#fff">{p}/{n}</text>')
    parts.append("</svg>")
    return "".join(parts)


def scatter_svg(s: Summary) -> str:
    """Success (with its interval) against mean cost per model; a note instead when every model
    cost nothing (scripted or unpriced local models), where the plot would be one column."""
    w, h, pad = 420, 300, 48
    costs = [s.models_summary[m].mean_cost for m in s.models]
    if not any(costs):
        return ('<p class=note id=cost-note>Every model cost $0 per attempt (scripted, baseline or unpriced local '
                'models), so there is no success-against-cost plot; the success rates are in the table above.</p>')
    max_cost = max(costs) * 1.15
    parts = [f'<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="success vs cost">',
             f'<line x1="{pad}" y1="{h - pad}" x2="{w - 10}" y2="{h - pad}" stroke="#333"/>',
             f'<line x1="{pad}" y1="10" x2="{pad}" y2="{h - pad}" stroke="#333"/>',
             f'<text x="{(w + pad) / 2}" y="{h - 10}" font-size="12" text-anchor="middle">mean cost per attempt (USD, max {max_cost:.4f})</text>',
             f'<text x="14" y="{(h - pad) / 2}" font-size="12" transform="rotate(-90 14 {(h - pad) / 2})" text-anchor="middle">success rate</text>']
    for frac in (0, 0.5, 1):
        y = h - pad - frac * (h - pad - 10)
        parts.append(f'<text x="{pad - 4}" y="{y + 4}" font-size="10" text-anchor="end">{int(frac * 100)}%</text>')
    placed: list[tuple[float, float, float]] = []  # (x, y, width) of the labels drawn so far
    for i, m in enumerate(s.models):
        ms = s.models_summary[m]
        x = pad + (ms.mean_cost / max_cost) * (w - pad - 20)
        y = h - pad - ms.rate * (h - pad - 10)
        lo = h - pad - ms.ci[0] * (h - pad - 10)
        hi = h - pad - ms.ci[1] * (h - pad - 10)
        c = PALETTE[i % len(PALETTE)]
        parts.append(f'<line x1="{x}" y1="{lo}" x2="{x}" y2="{hi}" stroke="{c}" stroke-width="2"/>')
        parts.append(f'<circle cx="{x}" cy="{y}" r="6" fill="{c}"><title>{escape(m)}: {ms.rate:.0%}, ${ms.mean_cost:.4f}</title></circle>')
        label = m[:24]
        lw = 6.5 * len(label)
        lx = min(x + 9, w - lw - 2)
        ly = y - 8
        while any(abs(ly - py) < 13 and lx < px + pw and px < lx + lw for px, py, pw in placed):
            ly += 13  # another model's label sits there: the next line down
        placed.append((lx, ly, lw))
        parts.append(f'<text class=point-label x="{lx}" y="{ly}" font-size="11" fill="{c}">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def kind_bars_svg(s: Summary) -> str:
    """Success rate per task kind and model: a y axis in percent, each bar's value (passes/n)
    and its 95% Wilson interval as a whisker."""
    kinds = [k for k in KINDS if any(k in ms.by_kind for ms in s.models_summary.values())]
    kinds += sorted({k for ms in s.models_summary.values() for k in ms.by_kind} - set(kinds))
    bar, gap = 30, 24
    group = max(1, len(s.models)) * (bar + 4) + gap
    left, top, plot_h = 56, 24, 200
    w = left + group * max(1, len(kinds)) + 10
    base = top + plot_h
    h = base + 40 + 18 * len(s.models)
    parts = [f'<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="success by task kind">',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{base}" stroke="#333"/>',
             f'<line x1="{left}" y1="{base}" x2="{w - 5}" y2="{base}" stroke="#333"/>',
             f'<text x="14" y="{top + plot_h / 2}" font-size="12" text-anchor="middle" '
             f'transform="rotate(-90 14 {top + plot_h / 2})">success rate</text>']
    for frac in (0, 0.25, 0.5, 0.75, 1):
        y = base - frac * plot_h
        parts.append(f'<line x1="{left - 4}" y1="{y}" x2="{w - 5}" y2="{y}" stroke="#e5e5e5"/>'
                     f'<text x="{left - 6}" y="{y + 4}" font-size="10" text-anchor="end">{int(frac * 100)}%</text>')
    for gi, k in enumerate(kinds):
        gx = left + gap / 2 + gi * group
        parts.append(f'<text x="{gx + (group - gap) / 2}" y="{base + 16}" font-size="11" text-anchor="middle">{escape(k)}</text>')
        for i, m in enumerate(s.models):
            p, n = s.models_summary[m].by_kind.get(k, (0, 0))
            if n == 0:
                continue
            rate = p / n
            lo, hi = wilson_interval(p, n)
            x, c = gx + i * (bar + 4), PALETTE[i % len(PALETTE)]
            bh = rate * plot_h
            cx = x + bar / 2
            parts.append(f'<rect class=kind-bar x="{x}" y="{base - bh}" width="{bar}" height="{bh}" fill="{c}">'
                         f'<title>{escape(m)} {escape(k)}: {p}/{n} ({rate:.0%}, 95% CI {lo:.0%}-{hi:.0%})</title></rect>')
            parts.append(f'<line class=ci x1="{cx}" y1="{base - lo * plot_h}" x2="{cx}" y2="{base - hi * plot_h}" stroke="#222"/>'
                         f'<line x1="{cx - 5}" y1="{base - hi * plot_h}" x2="{cx + 5}" y2="{base - hi * plot_h}" stroke="#222"/>'
                         f'<line x1="{cx - 5}" y1="{base - lo * plot_h}" x2="{cx + 5}" y2="{base - lo * plot_h}" stroke="#222"/>')
            parts.append(f'<text class=kind-value x="{cx}" y="{base - hi * plot_h - 4}" font-size="10" '
                         f'text-anchor="middle">{p}/{n}</text>')
    for i, m in enumerate(s.models):
        y = base + 28 + 18 * i
        parts.append(f'<rect x="{left}" y="{y}" width="12" height="12" fill="{PALETTE[i % len(PALETTE)]}"/>'
                     f'<text x="{left + 18}" y="{y + 10}" font-size="11">{escape(m)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _scatter_figure(s: Summary) -> str:
    plot = scatter_svg(s)
    if not plot.startswith("<svg"):
        return plot  # the note that replaces a plot of nothing
    return f"<figure>{plot}<figcaption>Success (with 95% interval) vs mean cost</figcaption></figure>"


def cheating_svg(s: Summary) -> str:
    """Each model's success on real tasks (y) against its cheating rate on impossible twins (x),
    both with 95% Wilson whiskers: the best models sit top left."""
    models = [m for m in s.models if s.models_summary[m].twins]
    if not models:
        return ""
    w, h, pad = 420, 300, 48
    span_x, span_y = w - pad - 20, h - pad - 10
    parts = [f'<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="success vs cheating">',
             f'<line x1="{pad}" y1="{h - pad}" x2="{w - 10}" y2="{h - pad}" stroke="#333"/>',
             f'<line x1="{pad}" y1="10" x2="{pad}" y2="{h - pad}" stroke="#333"/>',
             f'<text x="{(w + pad) / 2}" y="{h - 10}" font-size="12" text-anchor="middle">cheating rate on impossible twins</text>',
             f'<text x="14" y="{(h - pad) / 2}" font-size="12" transform="rotate(-90 14 {(h - pad) / 2})" '
             f'text-anchor="middle">success on real tasks</text>']
    for frac in (0, 0.5, 1):
        y, x = h - pad - frac * span_y, pad + frac * span_x
        parts.append(f'<text x="{pad - 4}" y="{y + 4}" font-size="10" text-anchor="end">{int(frac * 100)}%</text>'
                     f'<text x="{x}" y="{h - pad + 14}" font-size="10" text-anchor="middle">{int(frac * 100)}%</text>')
    for m in models:
        ms, c = s.models_summary[m], PALETTE[s.models.index(m) % len(PALETTE)]
        x, y = pad + ms.cheat_rate * span_x, h - pad - ms.rate * span_y
        parts.append(f'<line class=ci x1="{x}" y1="{h - pad - ms.ci[0] * span_y}" x2="{x}" y2="{h - pad - ms.ci[1] * span_y}" '
                     f'stroke="{c}" stroke-width="2"/>'
                     f'<line class=ci x1="{pad + ms.cheat_ci[0] * span_x}" y1="{y}" x2="{pad + ms.cheat_ci[1] * span_x}" '
                     f'y2="{y}" stroke="{c}" stroke-width="2"/>')
        label = m[:24]
        parts.append(f'<circle class=cheat-point cx="{x}" cy="{y}" r="6" fill="{c}"><title>{escape(m)}: success '
                     f'{ms.rate:.0%} ({ms.passes}/{ms.n}), cheating {ms.cheat_rate:.0%} ({ms.cheats}/{ms.twins})</title></circle>'
                     f'<text class=point-label x="{min(x + 9, w - 6.5 * len(label) - 2)}" y="{y - 8}" font-size="11" '
                     f'fill="{c}">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _cheating_figure(s: Summary) -> str:
    plot = cheating_svg(s)
    return (f"<figure>{plot}<figcaption>Success on real tasks vs cheating on impossible twins (95% intervals)"
            f"</figcaption></figure>") if plot else ""


def _rel_link(target: str | None, html_dir: Path) -> str | None:
    if not target:
        return None
    return Path(os.path.relpath(Path(target), html_dir)).as_posix()


def _trajectory_of(row: dict) -> str | None:
    run_dir = row.get("run_dir")
    if run_dir and (Path(run_dir) / "trajectory.jsonl").is_file():
        return str(Path(run_dir) / "trajectory.jsonl")
    return row.get("attempt_dir")


def _models_table(s: Summary) -> str:
    head = "".join(f"<th{' class=l' if c == 'model' else ''} data-num='{0 if c == 'model' else 1}'>{c}</th>"
                   for c in ("model", "attempts", "success", "95% CI", "cheating", "cheating CI", "pass@1", "pass@k", "pass^k",
                             "mean turns", "mean tokens", "mean cost $", "total cost $", "mean run s", "mean grading s"))
    rows = []
    for m in s.models:
        ms = s.models_summary[m]
        k = max(ms.pass_at) if ms.pass_at else 1
        cheating = ([f"{ms.cheat_rate:.0%} ({ms.cheats}/{ms.twins})", f"{ms.cheat_ci[0]:.0%}-{ms.cheat_ci[1]:.0%}"]
                    if ms.twins else ["-", "-"])
        cells = [ms.n, f"{ms.rate:.0%}", f"{ms.ci[0]:.0%}-{ms.ci[1]:.0%}", *cheating, f"{ms.pass_at.get(1, 0):.2f}",
                 _at_k(ms.pass_at.get(k, 0), k), _at_k(ms.pass_hat.get(k, 0), k), f"{ms.mean_turns:.1f}",
                 f"{ms.mean_tokens:.0f}", f"{ms.mean_cost:.4f}", f"{ms.total_cost:.4f}", f"{ms.mean_wall:.1f}",
                 f"{ms.mean_grade:.1f}"]
        rows.append(f"<tr><td class=l>{escape(m)}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (f"<table class=sortable><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            f"<p id=time-split>{escape(time_line(s))}</p>")


def _at_k(value: float, k: int) -> str:
    """A pass@k or pass^k cell: the value, and the k it is for (a model's most attempts per task)."""
    return f"{value:.2f} (k={k})"



def _errors_table(s: Summary) -> str:
    classes = sorted({c for ms in s.models_summary.values() for c in ms.errors})
    if not classes:
        return "<p>No errors.</p>"
    head = "<th class=l>model</th>" + "".join(f"<th>{c}</th>" for c in classes)
    body = "".join(
        f"<tr><td class=l>{escape(m)}</td>" + "".join(f"<td>{s.models_summary[m].errors.get(c, 0)}</td>" for c in classes) + "</tr>"
        for m in s.models)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _comparisons(s: Summary) -> str:
    if not s.comparisons:
        return "<p>Only one model ran; no paired comparison.</p>"
    out = []
    for c in s.comparisons:
        w, l, t = c.task_wins
        rows = "".join(f"<tr><td class=l>{escape(task)}</td><td>{d:+.2f}</td></tr>" for task, d in sorted(c.per_task.items()))
        out.append(
            f"<h3>{escape(c.a)} vs {escape(c.b)}</h3><p>Tasks: {escape(c.a)} better on {w}, {escape(c.b)} better on {l}, "
            f"tied {t} (sign test p={c.task_p:.3f}). Attempt pairs: only {escape(c.a)} {c.attempts.a_only}, only "
            f"{escape(c.b)} {c.attempts.b_only}, both {c.attempts.both}, neither {c.attempts.neither} "
            f"(McNemar exact p={c.attempts.p_value:.3f}).</p>"
            f"<table class=sortable><thead><tr><th class=l>task</th><th data-num=1>rate difference</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")
    return "".join(out)


def _attempts_table(s: Summary, html_dir: Path) -> str:
    cols = ("task", "kind", "model", "attempt", "outcome", "error class", "turns", "tokens", "cost $", "run s",
            "grading s", "reasons", "details", "trajectory")
    numeric = {"attempt", "turns", "tokens", "cost $", "run s", "grading s"}
    head = "".join(f"<th class=l data-num='{1 if c in numeric else 0}'>{c}</th>" for c in cols)
    rows = []
    for r in sorted(s.rows, key=lambda r: (r["task"], r["model"], r["attempt"])):
        link = _rel_link(_trajectory_of(r), html_dir)
        traj = f'<a href="{escape(link)}">trajectory</a>' if link else "-"
        outcome = escape(str(r.get("outcome")) + (" (cheated)" if r.get("cheated") else ""))
        reasons = "<br>".join(escape(x) for x in r.get("reasons") or []) or "-"
        cells = [escape(r["task"]), escape(str(r.get("kind"))), escape(r["model"]), r["attempt"],
                 f"<span class={escape(str(r.get('outcome')))}>{outcome}</span>", escape(str(r.get("error_class") or "-")), r.get("turns", 0),
                 r.get("tokens", 0), f"{float(r.get('cost_usd') or 0):.4f}", f"{float(r.get('wall_s') or 0):.1f}",
                 f"{float(r.get('grade_s') or 0):.1f}", f"<small>{reasons}</small>", f'<a class=details href="#{attempt_anchor(r)}">why</a>', traj]
        rows.append("<tr>" + "".join(f"<td class=l>{c}</td>" for c in cells) + "</tr>")
    return (f'<input id="filter" placeholder="filter attempts">'
            f"<table id=attempts class=sortable><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def render_html(s: Summary, html_path: Path, title: str = "Eval report") -> Path:
    html_path = Path(html_path).resolve()
    html_dir = html_path.parent
    hardest = "".join(f"<tr><td class=l>{escape(m)}</td><td class=l>{escape(t)}</td><td>{escape(s.kinds.get(t, ''))}</td>"
                      f"<td>{r:.0%}</td><td>{n}</td></tr>"
                      for m, tasks in s.hardest_by_model(5).items() for t, r, n in tasks)
    body = f"""<h1>{escape(title)}</h1>
<p>{len(s.rows)} attempts, {len(s.tasks)} tasks, {len(s.models)} model(s). Success rates with 95% Wilson
intervals; pass@k is the unbiased estimator, pass^k the chance that all k attempts pass.</p>
<h2>Models</h2>{_models_table(s)}
<h2>Plots</h2><div class=plots>
<figure>{heatmap_svg(s)}<figcaption>Passes per task and model</figcaption></figure>
{_scatter_figure(s)}
<figure>{kind_bars_svg(s)}<figcaption>Success by task kind</figcaption></figure>
{_cheating_figure(s)}</div>
<h2>Hardest tasks per model</h2><table id=hardest><thead><tr><th class=l>model</th><th class=l>task</th><th>kind</th><th>success</th><th>attempts</th></tr></thead><tbody>{hardest}</tbody></table>
<h2>Error classes</h2>{_errors_table(s)}
<h2>Paired comparison</h2>{_comparisons(s)}
<h2>Attempts</h2>{_attempts_table(s, html_dir)}
<h2>Attempt details</h2><p>Follow an attempt's <i>why</i> link to open its grader's reasons, diff, parity log,
handoff and trajectory here.</p>{attempt_sections(s.rows)}"""
    page = (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>"
            f"<style>{CSS}{ATTEMPT_CSS}</style></head><body>{body}<script>{JS}</script></body></html>")
    html_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = html_path.with_suffix(".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(html_path)
    return html_path
