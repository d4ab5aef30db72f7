"""The self-contained report.html: inline CSS, figures as base64 data URIs, one small inline script. No network."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from pathlib import Path

from harness.report.across import AcrossTasks
from harness.report.figures import Figure
from harness.report.findings import ArmRow, Row, fmt
from harness.report.runs import Run
from harness.report.studies import StudyReport

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1250px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
.meta { color: #555; font-size: .92em; }
.warnings { background: #fff4e5; border-left: 4px solid #f0a030; padding: .5em 1em; }
.verdict li { margin: .4em 0; }
figure { margin: 1.5em 0; }
figure img { display: block; width: 100%; height: auto; box-sizing: border-box; border: 1px solid #eee; }
figcaption { color: #555; font-size: .9em; }
table { border-collapse: collapse; font-size: .88em; margin: 1em 0; }
.wide { overflow-x: auto; }
th, td { border: 1px solid #ddd; padding: .3em .6em; text-align: right; }
th { background: #f4f4f4; } td.text, th.text { text-align: left; } td:not(.text) { white-space: nowrap; }
code { background: #f4f4f4; padding: .1em .3em; font-size: .88em; word-break: break-all; }
"""

# Tells the reader (and the browser test) whether every figure decoded, and records any script error in the DOM.
SCRIPT = """
window.addEventListener("error", (e) => { document.body.dataset.scriptError = String(e.message); });
window.addEventListener("load", () => {
  const images = Array.from(document.querySelectorAll("img.figure"));
  const rendered = images.filter((img) => img.complete && img.naturalWidth > 0).length;
  document.body.dataset.figuresRendered = String(rendered);
  document.getElementById("render-status").textContent =
    rendered + " of " + images.length + " figures rendered.";
});
"""


@dataclass
class TaskSection:
    task: str
    runs: list[Run]
    verdicts: list[str]
    notes: list[str]
    figures: list[Figure]
    rows: list[Row]
    arms: list[ArmRow]
    metrics: list[tuple[str, str]]
    grouping: str
    flags: list[str] = field(default_factory=list)  # runs whose held-out metric and training reward part ways
    primary: str = "reward"  # the metric the verdicts and the arm table rest on


def render(
    sources: list[str],
    warnings: list[str],
    tasks: list[TaskSection],
    study: StudyReport | None,
    tuned: list[dict] | None = None,
    across: AcrossTasks | None = None,
    across_figure: Figure | None = None,
) -> str:
    n_runs = sum(len(t.runs) for t in tasks)
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>harness comparison report</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>GSPO-token vs GRPO vs GSPO: comparison report</h1>",
        f"<p class='meta'>Generated {datetime.now():%Y-%m-%d %H:%M} from {n_runs} run(s) in "
        + ", ".join(f"<code>{escape(s)}</code>" for s in sources)
        + ".</p>",
        "<p class='meta' id='render-status'></p>",
    ]
    if warnings:
        parts.append(
            "<div class='warnings'><b>Skipped or partial input</b><ul>"
            + "".join(f"<li>{escape(w)}</li>" for w in warnings)
            + "</ul></div>"
        )
    if tuned:
        parts += tuned_html(tuned)
    if across is not None:
        parts += across_html(across)
        parts += [figure_html(across_figure)] if across_figure else []
    for task in tasks:
        parts += task_html(task)
    if study is not None:
        parts += study_html(study)
    parts.append(f"<script>{SCRIPT}</script></body></html>")
    return "\n".join(parts)


def task_html(task: TaskSection) -> list[str]:
    parts = [
        f"<h2>Task: {escape(task.task)}</h2>",
        f"<p class='meta'>{len(task.runs)} run(s) in {len(task.rows)} condition(s). {escape(task.grouping)}</p>",
        "<h3>Did GSPO-token help?</h3>",
    ]
    parts.append(
        _list(task.verdicts, "verdict")
        if task.verdicts
        else "<p>No comparison: the runs of this task do not include GSPO-token and a baseline.</p>"
    )
    parts.append(
        "<p class='meta'>Final window = each run's last <code>objective.last_n</code> logged steps; "
        "one value per seed. P(X &gt; Y) = probability that a random run of GSPO-token beats a random run of the "
        "baseline, IQM = interquartile mean, both with 95% stratified bootstrap CIs (Agarwal et al., NeurIPS 2021). "
        "Two comparisons per estimator, not corrected for multiple testing.</p>"
    )
    parts.append(
        f"<p class='meta'>The comparison rests on <code>{escape(task.primary)}</code>"
        + (
            " (held-out prompts, greedy decoding); the training reward is a secondary figure.</p>"
            if task.primary != "reward"
            else " (the training reward: these runs have no held-out evaluation).</p>"
        )
    )
    if task.flags:
        parts += ["<h3>Held-out and training reward part ways</h3>", _list(task.flags, "verdict")]
    parts += [
        f"<h3>Final {escape(task.primary)} per arm: IQM, mean, median [95% stratified bootstrap CI]</h3>",
        arms_html(task.arms),
    ]
    if task.notes:
        parts += ["<h3>Can GSPO-token differ from GSPO?</h3>", _list(task.notes, "verdict")]
    parts += [figure_html(f) for f in task.figures]
    parts += ["<h3>Final window: mean ± 95% CI across seeds</h3>", table_html(task.rows, task.metrics)]
    parts.append(runs_html(task.runs))
    return parts


def _list(items: list[str], css: str) -> str:
    return f"<ul class='{css}'>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>"


def figure_html(figure: Figure) -> str:
    data = base64.b64encode(Path(figure.path).read_bytes()).decode("ascii")
    return (
        f"<figure><img class='figure' alt='{escape(figure.title)}' src='data:image/png;base64,{data}'>"
        f"<figcaption><b>{escape(figure.title)}.</b> {escape(figure.caption)} "
        f"(<code>{escape(Path(figure.path).name)}</code>)</figcaption></figure>"
    )


def table_html(rows: list[Row], metrics: list[tuple[str, str]]) -> str:
    """One row per metric, one column per condition: a report logs a dozen or more metrics and compares a few
    conditions, so this way round the table fits the page (it scrolls inside its own box if it still does not)."""
    head = "".join(f"<th>{escape(row.condition.label)}<br>{row.n} seed(s)</th>" for row in rows)
    body = "".join(
        f"<tr><td class='text'>{escape(label)}<br><code>{escape(key)}</code></td>"
        + "".join(f"<td>{escape(fmt(row.cells[key]))}</td>" for row in rows)
        + "</tr>"
        for key, label in metrics
    )
    return f"<div class='wide'><table><tr><th class='text'>metric</th>{head}</tr>{body}</table></div>"


def arms_html(arms: list[ArmRow]) -> str:
    body = "".join(
        f"<tr><td class='text'>{escape(arm.condition.label)}</td><td>{arm.stats.n}</td>"
        f"<td>{escape(str(arm.stats.iqm))}</td><td>{escape(str(arm.stats.mean))}</td>"
        f"<td>{escape(str(arm.stats.median))}</td></tr>"
        for arm in arms
    )
    return (
        "<table class='arms'><tr><th class='text'>level · advantage</th><th>seeds</th><th>IQM</th><th>mean</th>"
        f"<th>median</th></tr>{body}</table>"
    )


def runs_html(runs: list[Run]) -> str:
    rows = "".join(
        f"<tr><td class='text'><code>{escape(str(r.path))}</code></td><td class='text'>{escape(r.level)}</td>"
        f"<td class='text'>{escape(r.advantage)}</td><td>{escape(str(r.seed))}</td>"
        f"<td>{len(r.records)}</td><td>{_num(r.final('reward'))}</td></tr>"
        for r in runs
    )
    return (
        "<details><summary>Runs</summary><table><tr><th class='text'>run directory</th><th class='text'>level</th>"
        "<th class='text'>advantage</th><th>seed</th><th>logged steps</th><th>final reward</th></tr>"
        + rows
        + "</table></details>"
    )


def _num(value) -> str:
    return "–" if value is None else f"{value:.4g}"


def study_html(study: StudyReport) -> list[str]:
    counts = ", ".join(f"{n} {state.lower()}" for state, n in sorted(study.counts.items()))
    parts = [
        f"<h2>Study: {escape(study.name)}</h2>",
        (
            f"<p class='meta'>Storage <code>{escape(study.storage)}</code>; direction {escape(study.direction)}; "
            f"trials: {escape(counts) or 'none'}.</p>"
        ),
    ]
    parts += [f"<p>{escape(note)}</p>" for note in study.notes]
    parts += [figure_html(f) for f in study.figures]
    if study.best:
        parts.append(
            "<h3>Best trials</h3><table><tr><th>trial</th><th>objective</th><th class='text'>parameters</th>"
            "<th class='text'>reproduce as a single run</th></tr>"
        )
        for best in study.best:
            params = ", ".join(f"{k}={v}" for k, v in best["params"].items())
            where = f"<br><span class='meta'>{escape(best['run_dir'])}</span>" if best["run_dir"] else ""
            parts.append(
                f"<tr><td>{best['number']}</td><td>{best['value']:.4g}</td>"
                f"<td class='text'>{escape(params)}</td>"
                f"<td class='text'><code>{escape(best['command'])}</code>{where}</td></tr>"
            )
        parts.append("</table>")
    return parts


def tuned_html(rows: list[dict]) -> list[str]:
    """A tuned comparison: every arm's single-seed best next to its winner by re-run mean on the fresh seeds."""
    parts = [
        "<h2>Tuned comparison</h2>",
        "<p class='meta'>Each arm is a study with the same budget over the same learning-rate range (and its level's "
        "own clip range); its best configurations were re-run on fresh seeds, none of which a search trial used. "
        "The sections below compare each arm's winner by re-run mean, on those seeds. Interval: 95% Student-t "
        "interval of the mean over the re-runs.</p>",
        "<table><tr><th class='text'>study (arm)</th><th>search trials</th><th>single-seed best</th>"
        "<th>winner</th><th>re-run mean [95% CI]</th><th class='text'>seeds</th>"
        "<th class='text'>winner's parameters</th></tr>",
    ]
    for row in rows:
        best = "–" if row["best_value"] is None else f"trial {row['best_trial']}: {row['best_value']:.4g}"
        if "winner" in row:
            ci = f" [{row['ci'][0]:.4g}, {row['ci'][1]:.4g}]" if row["ci"] else ""
            params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row["params"].items())
            cells = (
                f"<td>trial {row['winner']}</td><td>{row['mean']:.4g}{ci}</td>"
                f"<td class='text'>{', '.join(map(str, row['seeds']))}</td><td class='text'>{escape(params)}</td>"
            )
        else:
            cells = "<td colspan='4' class='text'>no finished re-run</td>"
        name = f"<td class='text'>{escape(row['study'])}</td>"
        parts.append(f"<tr>{name}<td>{row['search_trials']}</td><td>{best}</td>{cells}</tr>")
    parts.append("</table>")
    return parts


def across_html(across: AcrossTasks) -> list[str]:
    body = "".join(
        f"<tr><td class='text'>{escape(level)} · {escape(advantage)}</td><td>{stats.n}</td>"
        f"<td>{escape(str(stats.iqm))}</td><td>{escape(str(stats.mean))}</td><td>{escape(str(stats.median))}</td></tr>"
        for level, advantage, stats in across.arms
    )
    return [
        f"<h2>Across tasks ({escape(', '.join(across.tasks))})</h2>",
        f"<p class='meta'>Final {escape(across.metric)} normalised per task, min-max over every run of that task "
        "in this report "
        "((x - min) / (max - min): 0 = the task's worst run, 1 its best), then pooled with the tasks as strata of "
        "the stratified bootstrap (95% CIs). The scale depends on which runs the report holds.</p>",
        _list(across.improvements, "verdict") if across.improvements else "",
        "<table class='arms'><tr><th class='text'>level · advantage</th><th>runs</th><th>IQM</th><th>mean</th>"
        f"<th>median</th></tr>{body}</table>",
    ]
