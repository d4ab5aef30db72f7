"""Load runs -> group by task and condition -> figures, table, verdicts -> report.html (+ the optional study)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.report import figures as fig
from harness.report import heldout
from harness.report.across import across_tasks
from harness.report.findings import TABLE_METRICS, arm_table, noise_notes, spread_notes, table, verdicts
from harness.report.groups import by_condition, by_task
from harness.report.page import TaskSection, render
from harness.report.runs import ReportInputError, Run, load_runs
from harness.report.studies import load_study, study_report
from harness.report.tuned import arm_rows, tuned_arms
from harness.study.backends import find_journal

REPORT_FILE = "report.html"


@dataclass
class Report:
    html: Path
    figures: list[Path]
    warnings: list[str]


def default_out_dir(paths: list[Path]) -> Path:
    """`<dir>/report` for one multirun or sweep directory; `./report` for a list of run directories."""
    return paths[0] / "report" if len(paths) == 1 else Path("report")


def build_report(
    paths: list[Path],
    out_dir: Path | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    finalists: bool = False,
) -> Report:
    """Raises ReportInputError when there is nothing to report; everything else degrades to warnings. With
    `finalists`, the runs are each study's (arm's) winning finalist re-runs (harness/report/tuned.py)."""
    out_dir = out_dir or default_out_dir(paths)
    check_out_dir(out_dir, "--out" if out_dir != default_out_dir(paths) else "the default output dir (--out)")
    tuned = None
    if finalists:
        found: list[str] = []
        arms = tuned_arms(paths, found)
        run_dirs = [d for arm in arms for d in arm.run_dirs]
        if not run_dirs:
            raise ReportInputError(f"no finished finalist re-run under {', '.join(map(str, paths))}")
        runs, warnings = load_runs(run_dirs)
        warnings = found + warnings
        tuned = arm_rows(arms)
    else:
        runs, warnings = load_runs(paths)
    out_dir.mkdir(parents=True, exist_ok=True)
    study = None if finalists else _study(paths, storage, study_name, out_dir, warnings)
    tasks = by_task(runs)
    if len(tasks) > 1:
        warnings.append(
            f"runs of {len(tasks)} different tasks (reward.name: {', '.join(tasks)}): each task gets its own "
            "section; the section 'Across tasks' pools them on per-task normalised scores"
        )
    sections = [
        task_section(task, task_runs, out_dir, f"{task}_" if len(tasks) > 1 else "", split_variants=study is None)
        for task, task_runs in tasks.items()
    ]
    across = across_tasks(tasks)
    across_figure = None
    if across is not None:
        path = out_dir / "across_performance_profiles.png"
        across_figure = fig.normalised_profiles(across.scores, across.metric, path)
    html = out_dir / REPORT_FILE
    html.write_text(render([str(p) for p in paths], warnings, sections, study, tuned, across, across_figure))
    figure_paths = [f.path for s in sections for f in s.figures] + [f.path for f in (study.figures if study else [])]
    figure_paths += [across_figure.path] if across_figure else []
    return Report(html, figure_paths, warnings)


def check_out_dir(out_dir: Path, what: str) -> None:
    """Refuse an output directory that cannot be created or written, before anything is read or drawn."""
    existing = out_dir.resolve()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ReportInputError(f"{what} {out_dir}: {existing} is a file, not a directory")
    try:
        tempfile.TemporaryDirectory(dir=existing).cleanup()  # as root, os.access says yes to read-only mounts
    except OSError as error:
        raise ReportInputError(f"{what} {out_dir} is not writable ({error.strerror}: {existing})") from None


def _study(paths: list[Path], storage: str | None, study_name: str | None, out_dir: Path, warnings: list[str]):
    if storage is None:
        journal = next(filter(None, map(find_journal, paths)), None)
        if journal is None:
            return None
        storage = str(journal)
    try:
        return study_report(load_study(storage, study_name), storage, out_dir, paths)
    except Exception as error:  # noqa: BLE001 - the runs' report is still worth writing without the study
        warnings.append(f"study section left out: {type(error).__name__}: {error}")
        return None


# (file name, title, caption, [(metric, axis label), ...]): one figure each, rows = metrics.
STEP_FIGURES = [
    ("reward", "Reward over steps",
     ("Mean across seeds with a 95% confidence band (t-interval), per importance-sampling level; the y axis spans "
      "the individual runs' values, so a wide band is cut at the axis."),
     [("reward", "reward")]),
    ("clipping", "Clip fractions over steps",
     ("Share of tokens (top) and of sequences (bottom: each sequence's clipped-token share, averaged) that the "
      "PPO-style clip cut off; comparable across levels."),
     [("clip/region_frac_token", "clipped, token-weighted"), ("clip/region_frac_seq", "clipped, seq-weighted")]),
    ("is_ratio", "Importance ratio spread, effective sample size and noise floor",
     ("Spread of the importance weights each level actually used, their normalised ESS (1 = uniform weights), and "
      "the ratio's noise floor: max sequence-level |log w| on the first step after generation, where exact "
      "arithmetic gives 0; it must stay well below the clip range."),
     [("is_ratio/std", "IS ratio std"), ("is_ratio/ess", "effective sample size"),
      ("is_ratio/noise_seq_max", "noise floor (seq)")]),
    ("advantages", "Per-token advantage statistics",
     ("Within-sequence spread of the advantages: exactly 0 under outcome advantages, where GSPO-token reduces to "
      "GSPO; only a positive spread lets the two differ."),
     [("adv/within_seq_std", "within-sequence std"), ("adv/std", "std over all tokens")]),
    ("credit", "How right the credit is",
     ("adv/credit_corr: within each completion, Spearman's rank correlation between the per-token advantages the "
      "loss saw and the process advantages of the task's reference token rewards (reward.credit_reference, the "
      "true credit), averaged over completions; 1 = the true ranking. Not logged for outcome advantages, which "
      "do not rank tokens. adv/credit_corr_step: the same against the reference token rewards themselves "
      "(which tokens were right), the credit a per-step estimator such as mc_value aims at."),
     [("adv/credit_corr", "credit rank correlation"), ("adv/credit_corr_step", "step credit rank correlation")]),
]  # fmt: skip
# Shown in the final table when some run logs it (tasks with a reference credit).
CREDIT_METRICS = [("adv/credit_corr", "credit rank corr"), ("adv/credit_corr_step", "step credit rank corr")]


def task_section(task: str, runs: list[Run], out_dir: Path, prefix: str, split_variants: bool) -> TaskSection:
    groups = by_condition(runs, split_variants)
    primary = heldout.primary_metric(runs)  # held-out when every run evaluated: the comparison rests on it
    held_out = heldout.heldout_metrics(runs)
    # A study may optimise another metric than reward: plot and tabulate it too (unless the held-out figure has it).
    metrics_in = {str(r.config.get("objective", {}).get("metric", "reward")) for r in runs}
    objectives = sorted(metrics_in - {"reward"} - dict(held_out).keys())
    objective_figures = [
        (
            f"objective_{m.replace('/', '_')}",
            f"Study objective ({m}) over steps",
            "Mean across runs, 95% CI band.",
            [(m, m)],
        )
        for m in objectives
    ]
    held_figure = [(*heldout.FIGURE, held_out)] if held_out else []
    specs = held_figure + STEP_FIGURES[:1] + objective_figures + STEP_FIGURES[1:]  # held-out first, then reward
    figures = [fig.metric_grid(groups, metrics, out_dir / f"{prefix}{name}.png", title, caption)
               for name, title, caption, metrics in specs]  # fmt: skip
    profiles = fig.performance_profiles(groups, primary, out_dir / f"{prefix}performance_profiles.png")
    figures.insert(1 + bool(held_figure), profiles)
    figures.append(fig.advantage_histograms(groups, out_dir / f"{prefix}advantage_histograms.png"))
    grouping = "Runs are grouped by their resolved config.yaml: level × advantage" + (
        " × any other key that differs between seeds' configs."
        if split_variants
        else " (study trials: their other parameters vary, see the study section)."
    )
    credit = [(key, label) for key, label in CREDIT_METRICS if any(run.series(key) for run in runs)]
    metrics = held_out + TABLE_METRICS + credit + [(m, f"objective ({m})") for m in objectives]
    return TaskSection(
        task=task,
        runs=runs,
        verdicts=verdicts(groups, primary),
        notes=spread_notes(groups) + noise_notes(groups),
        flags=heldout.divergence_notes(groups),
        primary=primary,
        figures=[f for f in figures if f is not None],
        rows=table(groups, metrics),
        arms=arm_table(groups, primary),
        metrics=metrics,
        grouping=grouping,
    )
