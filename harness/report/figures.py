"""Matplotlib figures of a task's conditions over training steps, saved as PNG for the page to embed."""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: the report is built on CI machines and inside Hydra callbacks
import matplotlib.pyplot as plt
import numpy as np

from harness.config.levels import LEVELS
from harness.report.aggregates import performance_profile
from harness.report.groups import LEVEL_LABELS, Condition, column_label, final_values, level_rank, over_steps
from harness.report.runs import Run

# One colour per level everywhere on the page, in registration order from matplotlib's default cycle (so the
# legend reads as usual: blue, orange, green, ...).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")
LEVEL_COLORS = dict(zip(LEVELS.names(), PALETTE))
OTHER_COLOR = "#7f7f7f"
# The compared level (GSPO-token) is dashed: where it computes GSPO's exact gradient (outcome advantages) the two
# lines coincide.
LEVEL_STYLES = {level.name: (0, (4, 2)) for level in LEVELS if not level.baseline}
# Every figure is drawn at the page's content width (page.py: body max-width 1250px, img width 100%) so that text
# shows at its point size at 100% zoom: 12.2 in x 100 dpi = 1220 px. Saved with bbox_inches="tight", so a title or
# legend that does not fit grows the image instead of being cut at its edge.
WIDTH = 12.2
DPI = 100
PAD = 0.12  # inches of white margin around the tight bounding box
TITLE_SIZE, TEXT_SIZE = 13, 10


@dataclass
class Figure:
    path: Path
    title: str
    caption: str


def _columns(groups: dict[Condition, list[Run]]) -> list[tuple]:
    return list(dict.fromkeys(condition.column for condition in groups))


def _has_metric(groups: dict[Condition, list[Run]], metric: str) -> bool:
    return any(run.series(metric) for runs in groups.values() for run in runs)


def metric_grid(
    groups: dict[Condition, list[Run]], metrics: list[tuple[str, str]], path: Path, title: str, caption: str
) -> Figure | None:
    """Rows = metrics, columns = advantage estimator (and variant), one line per level: mean with 95% CI band."""
    metrics = [(key, label) for key, label in metrics if _has_metric(groups, key)]
    if not metrics:
        return None
    columns = _columns(groups)
    fig, axes = plt.subplots(
        len(metrics),
        len(columns),
        figsize=(WIDTH, 2.8 * len(metrics) + 1.2),
        squeeze=False,
        sharex=True,
        layout="constrained",
    )
    for col, column in enumerate(columns):
        axes[0][col].set_title(_wrap(column_label(column), WIDTH / len(columns), TEXT_SIZE), fontsize=TEXT_SIZE)
        for row, (key, label) in enumerate(metrics):
            ax = axes[row][col]
            column_runs = []
            for condition, runs in groups.items():
                if condition.column == column:
                    _plot_band(ax, runs, key, condition.level)
                    column_runs += runs
            _limit_to_runs(ax, column_runs, key)
            ax.set_ylabel(label if col == 0 else "", fontsize=TEXT_SIZE)
            ax.grid(alpha=0.3)
        axes[-1][col].set_xlabel("step", fontsize=TEXT_SIZE)
    _header(fig, groups, title)
    _save(fig, path)
    return Figure(path, title, caption)


def _wrap(text: str, width_in: float, points: float) -> str:
    """Break text into lines that fit width_in inches at the font size (a character is ~0.6 em wide)."""
    return textwrap.fill(text, max(12, int(width_in * 72 / (0.6 * points))))


def _save(fig, path: Path) -> None:
    fig.savefig(path, dpi=DPI, bbox_inches="tight", pad_inches=PAD, facecolor="white")
    plt.close(fig)


def _plot_band(ax, runs: list[Run], metric: str, level: str) -> None:
    steps, mean, half = over_steps(runs, metric)
    color = LEVEL_COLORS.get(level, OTHER_COLOR)
    # Markers where a curve has few points (held-out metrics of a short run: one evaluation is no line at all).
    marker = "o" if len(steps) <= 3 else None
    ax.plot(steps, mean, color=color, linewidth=1.6, linestyle=LEVEL_STYLES.get(level, "solid"), marker=marker)
    band = [(s, m - h, m + h) for s, m, h in zip(steps, mean, half) if not math.isnan(h)]
    if band:
        s, low, high = zip(*band)
        ax.fill_between(s, low, high, color=color, alpha=0.2, linewidth=0)


def _limit_to_runs(ax, runs: list[Run], metric: str) -> None:
    """Fit the y axis to the individual runs' values: with 2-3 seeds a t-band is wide (t = 12.7 for n = 2) and
    would otherwise flatten the curves; the band is cut at the axis instead."""
    values = [v for run in runs for _, v in run.series(metric) if math.isfinite(v)]
    if values:
        low, high = min(values), max(values)
        # At least ±1e-6, so float32 round-off (e.g. the ~1e-8 within-sequence std of outcome advantages) draws flat.
        margin = max(0.05 * (high - low), 1e-6)
        ax.set_ylim(low - margin, high + margin)


def _header(fig, groups: dict[Condition, list[Run]], title: str | None) -> None:
    """The title above the panels, the level legend below them: the constrained layout makes room for both."""
    if title:
        fig.suptitle(_wrap(title, WIDTH, TITLE_SIZE), fontsize=TITLE_SIZE)
    _legend(fig, groups)


def _legend(fig, groups: dict[Condition, list[Run]]) -> None:
    counts: dict[str, set] = {}
    for condition, runs in groups.items():
        counts.setdefault(condition.level, set()).add(len(runs))
    _level_legend(fig, counts)


def _level_legend(fig, counts: dict[str, set]) -> None:
    """One entry per level, with its runs per panel (n=3, or n=2/3 where panels differ)."""
    handles = [
        plt.Line2D(
            [], [], color=LEVEL_COLORS.get(level, OTHER_COLOR), linewidth=2, linestyle=LEVEL_STYLES.get(level, "solid")
        )
        for level in counts
    ]
    labels = [f"{LEVEL_LABELS.get(level, level)} (n={'/'.join(map(str, sorted(ns)))})" for level, ns in counts.items()]
    # "outside" below the panels: the constrained layout makes room for it, clear of the title and of every panel.
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 4), fontsize=TEXT_SIZE, frameon=False)


def advantage_histograms(groups: dict[Condition, list[Run]], path: Path) -> Figure | None:
    """The last logged histogram of per-token advantages of every run, as densities, one panel per column."""
    columns = [
        c for c in _columns(groups) if any(r.histograms for cond, rs in groups.items() if cond.column == c for r in rs)
    ]
    if not columns:
        return None
    fig, axes = plt.subplots(1, len(columns), figsize=(WIDTH, 4.2), squeeze=False, layout="constrained")
    for ax, column in zip(axes[0], columns):
        for condition, runs in groups.items():
            for run in runs if condition.column == column else []:
                if run.histograms:
                    _plot_histogram(ax, run.histograms[-1][1], LEVEL_COLORS.get(condition.level, OTHER_COLOR))
        ax.set_title(_wrap(column_label(column), WIDTH / len(columns), TEXT_SIZE), fontsize=TEXT_SIZE)
        ax.set_xlabel("per-token advantage", fontsize=TEXT_SIZE)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("density", fontsize=TEXT_SIZE)
    _header(fig, groups, None)
    _save(fig, path)
    title = "Distribution of per-token advantages (last logged histogram of each run)"
    return Figure(
        path,
        title,
        "Outcome advantages give every token of a sequence the same value; process "
        "advantages spread them along the sequence.",
    )


def _plot_histogram(ax, histogram: dict, color: str) -> None:
    counts, edges = histogram["counts"], histogram["edges"]
    total = sum(counts)
    if not total:
        return
    widths = [b - a for a, b in pairwise(edges)]
    density = [c / total / w if w else 0.0 for c, w in zip(counts, widths)]
    ax.stairs(density, edges, color=color, alpha=0.6)


def study_history(values: list[tuple[int, float]], direction: str, path: Path) -> Figure:
    """Objective per finished trial and the best value so far."""
    fig, ax = plt.subplots(figsize=(WIDTH, 3.8), layout="constrained")
    numbers, objective = zip(*values)
    pick = max if direction == "maximize" else min
    best, running = [], None
    for value in objective:
        running = value if running is None else pick(running, value)
        best.append(running)
    ax.scatter(numbers, objective, color=PALETTE[0], s=22, label="trial objective")
    ax.step(numbers, best, where="post", color="#d62728", label="best so far")
    ax.set_xlabel("trial number")
    ax.set_ylabel("objective")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=TEXT_SIZE)
    _save(fig, path)
    return Figure(path, "Optimisation history", f"Completed trials' objective ({direction}) in trial order.")


def study_importances(importances: dict[str, float], path: Path) -> Figure:
    names = list(importances)[::-1]
    fig, ax = plt.subplots(figsize=(WIDTH, 0.9 + 0.45 * len(names)), layout="constrained")
    ax.barh(names, [importances[n] for n in names], color=PALETTE[2])
    ax.set_xlabel("importance (share of objective variance, fANOVA)")
    ax.grid(alpha=0.3, axis="x")
    _save(fig, path)
    return Figure(path, "Parameter importances", "How much of the objective's variation each parameter explains.")


def normalised_profiles(scores: dict[tuple[str, str], dict[str, list[float]]], metric: str, path: Path) -> Figure:
    """Across tasks: per advantage, one step curve per level of the fraction of runs whose min-max normalised final
    score exceeds tau, averaged over tasks, with the 95% stratified bootstrap band (tasks as strata;
    harness/report/across.py)."""
    thresholds = np.linspace(-0.02, 1.02, 105)
    advantages = sorted({advantage for _, advantage in scores})
    fig, axes = plt.subplots(1, len(advantages), figsize=(WIDTH, 4.2), squeeze=False, layout="constrained")
    counts: dict[str, set] = {}
    for ax, advantage in zip(axes[0], advantages):
        arms = sorted((level for level, a in scores if a == advantage), key=level_rank)
        for level in arms:
            by_task = scores[(level, advantage)]
            counts.setdefault(level, set()).add(sum(map(len, by_task.values())))
            points, lows, highs = performance_profile(list(by_task.values()), thresholds)
            color = LEVEL_COLORS.get(level, OTHER_COLOR)
            ax.plot(thresholds, points, color=color, linewidth=1.6, linestyle=LEVEL_STYLES.get(level, "solid"),
                    drawstyle="steps-post")  # fmt: skip
            if not math.isnan(lows[0]):
                ax.fill_between(thresholds, lows, highs, color=color, alpha=0.15, linewidth=0, step="post")
        ax.set_title(f"{advantage} advantage", fontsize=TEXT_SIZE)
        ax.set_xlabel("normalised final score threshold τ", fontsize=TEXT_SIZE)
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("fraction of runs > τ (mean over tasks)", fontsize=TEXT_SIZE)
    _level_legend(fig, counts)
    _save(fig, path)
    return Figure(
        path,
        f"Performance profiles across tasks (final {metric}, normalised per task)",
        "Each task's final values min-max normalised over the report's runs of that task, then the fraction of each "
        "level's runs above each threshold, averaged over tasks, with a 95% stratified bootstrap band (tasks as "
        "strata; Agarwal et al., NeurIPS 2021).",
    )


def performance_profiles(groups: dict[Condition, list[Run]], metric: str, path: Path) -> Figure | None:
    """Per column, one step curve per level: the fraction of its runs whose final metric exceeds tau, with the 95%
    stratified bootstrap band (Agarwal et al. 2021; harness/report/aggregates.py)."""
    finals = {condition: final_values(runs, metric) for condition, runs in groups.items()}
    values = [v for vs in finals.values() for v in vs]
    if not values:
        return None
    low, high = min(values), max(values)
    margin = max(0.05 * (high - low), 1e-6)
    thresholds = np.linspace(low - margin, high + margin, 101)
    columns = _columns(groups)
    fig, axes = plt.subplots(1, len(columns), figsize=(WIDTH, 4.2), squeeze=False, layout="constrained")
    for ax, column in zip(axes[0], columns):
        for condition, runs in finals.items():
            if condition.column != column or not runs:
                continue
            points, lows, highs = performance_profile([runs], thresholds)
            color = LEVEL_COLORS.get(condition.level, OTHER_COLOR)
            style = LEVEL_STYLES.get(condition.level, "solid")
            ax.plot(thresholds, points, color=color, linewidth=1.6, linestyle=style, drawstyle="steps-post")
            if not math.isnan(lows[0]):
                ax.fill_between(thresholds, lows, highs, color=color, alpha=0.15, linewidth=0, step="post")
        ax.set_title(_wrap(column_label(column), WIDTH / len(columns), TEXT_SIZE), fontsize=TEXT_SIZE)
        ax.set_xlabel(f"final {metric} threshold τ", fontsize=TEXT_SIZE)
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"fraction of runs with final {metric} > τ", fontsize=TEXT_SIZE)
    _header(fig, groups, None)
    _save(fig, path)
    return Figure(
        path,
        f"Performance profiles of final {metric}",
        "Fraction of each level's runs whose final-window value exceeds each threshold, with a 95% stratified "
        "bootstrap band (Agarwal et al., NeurIPS 2021): a curve above another everywhere dominates it.",
    )
