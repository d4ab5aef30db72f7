"""Matplotlib figures of a task's conditions over training steps, saved as PNG for the page to embed."""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: the report is built on CI machines and inside Hydra callbacks
import matplotlib.pyplot as plt

from harness.config.levels import LEVELS
from harness.report.groups import LEVEL_LABELS, Condition, column_label, over_steps
from harness.report.runs import Run

# One colour per level everywhere on the page, in registration order from matplotlib's default cycle (so the
# legend reads as usual: blue, orange, green, ...).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")
LEVEL_COLORS = dict(zip(LEVELS.names(), PALETTE))
OTHER_COLOR = "#7f7f7f"
# The compared level (GSPO-token) is dashed: where it computes GSPO's exact gradient (outcome advantages) the two
# lines coincide.
LEVEL_STYLES = {level.name: (0, (4, 2)) for level in LEVELS if not level.baseline}


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
        len(metrics), len(columns), figsize=(4.6 * len(columns), 2.6 * len(metrics) + 0.9), squeeze=False, sharex=True
    )
    for col, column in enumerate(columns):
        axes[0][col].set_title(column_label(column), fontsize=10)
        for row, (key, label) in enumerate(metrics):
            ax = axes[row][col]
            column_runs = []
            for condition, runs in groups.items():
                if condition.column == column:
                    _plot_band(ax, runs, key, condition.level)
                    column_runs += runs
            _limit_to_runs(ax, column_runs, key)
            ax.set_ylabel(label if col == 0 else "", fontsize=9)
            ax.grid(alpha=0.3)
        axes[-1][col].set_xlabel("step")
    _header(fig, groups, title)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Figure(path, title, caption)


def _plot_band(ax, runs: list[Run], metric: str, level: str) -> None:
    steps, mean, half = over_steps(runs, metric)
    color = LEVEL_COLORS.get(level, OTHER_COLOR)
    ax.plot(steps, mean, color=color, linewidth=1.6, linestyle=LEVEL_STYLES.get(level, "solid"))
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
    """Title, then the level legend, above the panels: placed in inches so short figures do not overlap them."""
    height = fig.get_figheight()
    top = 0.05
    if title:
        fig.suptitle(title, fontsize=12, y=1 - top / height, va="top")
        top += 0.3
    _legend(fig, groups, y=1 - top / height)
    fig.tight_layout(rect=(0, 0, 1, 1 - (top + 0.2) / height))


def _legend(fig, groups: dict[Condition, list[Run]], y: float) -> None:
    counts: dict[str, set] = {}
    for condition, runs in groups.items():
        counts.setdefault(condition.level, set()).add(len(runs))
    handles = [
        plt.Line2D(
            [], [], color=LEVEL_COLORS.get(level, OTHER_COLOR), linewidth=2, linestyle=LEVEL_STYLES.get(level, "solid")
        )
        for level in counts
    ]
    labels = [f"{LEVEL_LABELS.get(level, level)} (n={'/'.join(map(str, sorted(ns)))})" for level, ns in counts.items()]
    fig.legend(
        handles, labels, loc="upper center", ncol=len(labels), bbox_to_anchor=(0.5, y), fontsize=9, frameon=False
    )


def advantage_histograms(groups: dict[Condition, list[Run]], path: Path) -> Figure | None:
    """The last logged histogram of per-token advantages of every run, as densities, one panel per column."""
    columns = [
        c for c in _columns(groups) if any(r.histograms for cond, rs in groups.items() if cond.column == c for r in rs)
    ]
    if not columns:
        return None
    fig, axes = plt.subplots(1, len(columns), figsize=(4.6 * len(columns), 3.4), squeeze=False)
    for ax, column in zip(axes[0], columns):
        for condition, runs in groups.items():
            for run in runs if condition.column == column else []:
                if run.histograms:
                    _plot_histogram(ax, run.histograms[-1][1], LEVEL_COLORS.get(condition.level, OTHER_COLOR))
        ax.set_title(column_label(column), fontsize=10)
        ax.set_xlabel("per-token advantage")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("density")
    _header(fig, groups, None)
    fig.savefig(path, dpi=90)
    plt.close(fig)
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
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
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
    ax.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Figure(path, "Optimisation history", f"Completed trials' objective ({direction}) in trial order.")


def study_importances(importances: dict[str, float], path: Path) -> Figure:
    names = list(importances)[::-1]
    fig, ax = plt.subplots(figsize=(7.5, 0.5 + 0.45 * len(names)))
    ax.barh(names, [importances[n] for n in names], color=PALETTE[2])
    ax.set_xlabel("importance (share of objective variance, fANOVA)")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Figure(path, "Parameter importances", "How much of the objective's variation each parameter explains.")
