"""The comparison report on real runs: the preset's multirun (shrunk), the page in headless Chromium, bad input."""

import json
import os
import re
import shutil
import subprocess
import sys
from html import escape
from pathlib import Path

import pytest
import yaml

from harness.report.__main__ import main as report_main
from harness.report.build import build_report
from harness.report.figures import LEVEL_COLORS
from harness.report.runs import ReportInputError, find_run_dirs, load_run
from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.e2e

FIGURES = {"reward.png", "performance_profiles.png", "clipping.png", "is_ratio.png", "advantages.png"}


@pytest.fixture(scope="module")
def multirun(tmp_path_factory) -> Path:
    """The ready comparison preset, shrunk to 4 steps x 2 seeds: 12 real jobs, and its callback writes the report."""
    sweep = tmp_path_factory.mktemp("multirun")
    result = run_cli(
        "-m", "experiment=gspo_token_vs_baselines", "debug=fast", "logger=none", "seed=0,1",
        f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "harness.report: wrote" in result.stdout, result.stdout[-2000:]
    return sweep


@pytest.fixture(scope="module")
def addition_run(tmp_path_factory) -> Path:
    """One real run of the second task, to mix tasks."""
    run_dir = tmp_path_factory.mktemp("addition")
    result = run_cli("reward=addition", "debug=fast", "logger=none", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def copy_runs(multirun: Path, dest: Path) -> list[Path]:
    """The multirun's job dirs copied under neutral names (run-00, run-01, ...), without their model weights."""
    ignore = shutil.ignore_patterns("final_model", "initial_model", "trainer", ".hydra")
    jobs = sorted(p for p in multirun.iterdir() if (p / "config.yaml").is_file())
    copies = [dest / f"run-{i:02d}" for i in range(len(jobs))]
    for job, copy in zip(jobs, copies):
        shutil.copytree(job, copy, ignore=ignore)
    return copies


def test_preset_multirun_ends_with_a_report(multirun):
    out = multirun / "report"
    assert FIGURES <= {p.name for p in out.glob("*.png")}
    html = (out / "report.html").read_text()
    for level in ("GRPO (token)", "GSPO (sequence)", "GSPO-token (sequence_token)"):
        assert html.count(level) >= 2  # table rows and verdicts
    assert "Welch&#x27;s t-test" in html and "2 vs 2 seeds" in html
    # The field's statistics lead each verdict; the per-arm table gives IQM, mean and median with bootstrap CIs.
    assert re.search(r"P\(GSPO-token &gt; GSPO\) = [\d.]+ \[[\d.]+, [\d.]+\]", html)
    assert re.search(r"P\(GSPO-token &gt; GRPO\) = [\d.]+ \[[\d.]+, [\d.]+\]", html)
    # The preset is judged on held-out prompts: arms, verdicts and profiles rest on the held-out greedy reward.
    assert "Final eval/greedy/reward per arm: IQM, mean, median [95% stratified bootstrap CI]" in html
    assert "The comparison rests on <code>eval/greedy/reward</code>" in html and "final eval/greedy/reward" in html
    assert "heldout.png" in {p.name for p in out.glob("*.png")}
    assert "seeds per arm" in html or "resolved with these seeds" in html or "no number of seeds" in html
    # Outcome advantages are constant along a sequence: the page must say GSPO-token reduces to GSPO there.
    assert "GSPO-token computes GSPO&#x27;s gradient" in html
    # The CPU default computes in float32: the ratio is exactly 1 where it should be.
    assert "noise floor is at most 0, well below every level&#x27;s clip range" in html


def test_cli_writes_self_contained_html_and_prints_paths(multirun, tmp_path, capsys):
    assert report_main([str(multirun), "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {tmp_path / 'report.html'}" in printed and str(tmp_path / "reward.png") in printed
    html = (tmp_path / "report.html").read_text()
    sources = re.findall(r"""(?:src|href)=['"]([^'"]+)""", html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http://" not in html and "https://" not in html
    assert re.search(r"<tr><td class='text'>GSPO-token \(sequence_token\) · process advantage</td><td>2</td>", html)


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: run bash scripts/setup.sh --test")
        pytest.skip("chromium is not installed (bash scripts/setup.sh --test installs it)")
    return path


def open_in_chromium(html: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    switches = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ]  # fmt: skip
    result = subprocess.run(
        [chromium(), *switches, *args, html.as_uri()], check=False, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_page_renders_in_headless_chromium(multirun, tmp_path):
    html = multirun / "report" / "report.html"
    n_figures = html.read_text().count("<img class='figure'")
    dom = open_in_chromium(html, tmp_path, "--dump-dom").stdout
    # The page's own script records decoded figures and any script error on <body>.
    assert f'data-figures-rendered="{n_figures}"' in dom, dom[:500]
    assert "data-script-error" not in dom
    assert f"{n_figures} of {n_figures} figures rendered." in dom

    shot = tmp_path / "page.png"
    open_in_chromium(
        html, tmp_path, f"--screenshot={shot}", "--window-size=1280,4800"
    )  # the held-out figure, then the reward curves
    from PIL import Image

    pixels = list(Image.open(shot).convert("RGB").getdata())
    assert len(set(pixels)) > 50, "blank screenshot"
    for level, color in LEVEL_COLORS.items():  # every level's curve is drawn in the visible part of the page
        rgb = tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))
        near = sum(1 for p in pixels if sum(abs(a - b) for a, b in zip(p, rgb)) < 30)
        assert near > 200, f"{level}: only {near} pixels of its colour {color}"


# Appended to a copy of the page: records the body's content width and each figure's rendered and natural width.
LAYOUT_PROBE = """<script>
window.addEventListener("load", () => {
  const style = getComputedStyle(document.body);
  const content = document.body.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  const images = Array.from(document.querySelectorAll("img.figure"));
  document.body.dataset.contentWidth = content.toFixed(1);
  document.body.dataset.pageOverflow = (document.documentElement.scrollWidth - window.innerWidth).toFixed(0);
  document.body.dataset.figures = images
    .map((img) => img.getBoundingClientRect().width.toFixed(1) + ":" + img.naturalWidth).join(",");
});
</script>"""


def background_at_edges(png: Path) -> bool:
    """True when the outermost 2 pixels of every side are white: a title or legend cut at the figure's edge is not."""
    from PIL import Image

    image = Image.open(png).convert("RGB")
    width, height = image.size
    strips = [(0, 0, width, 2), (0, height - 2, width, height), (0, 0, 2, height), (width - 2, 0, width, height)]
    return all(set(image.crop(box).getdata()) == {(255, 255, 255)} for box in strips)


def assert_figures_fit_the_page(html: Path, figures: list[Path], tmp_path: Path) -> None:
    """Every figure spans the content width at about its natural size (text at its point size at 100% zoom), and
    nothing in it is cut at its edges."""
    probe = tmp_path / "probe.html"
    probe.write_text(html.read_text().replace("</body>", LAYOUT_PROBE + "</body>"))
    dom = open_in_chromium(probe, tmp_path, "--dump-dom", "--window-size=1280,2000").stdout
    content = float(re.search(r'data-content-width="([\d.]+)"', dom).group(1))
    overflow = int(re.search(r'data-page-overflow="(-?\d+)"', dom).group(1))
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px at 1280px"
    widths = re.search(r'data-figures="([^"]*)"', dom).group(1).split(",")
    assert len(widths) == html.read_text().count("<img class='figure'") > 0
    for entry in widths:
        rendered, natural = map(float, entry.split(":"))
        assert abs(rendered - content) <= 2, f"a figure is {rendered}px wide on a {content}px page"
        assert 0.85 <= rendered / natural <= 1.15, f"a {natural}px figure drawn at {rendered}px"
    clipped = [p.name for p in figures if not background_at_edges(p)]
    assert not clipped, f"drawn up to their edges (clipped?): {clipped}"


def test_figures_fit_the_page(multirun, tmp_path):
    """The preset's two advantage columns, and one column alone (the outcome runs): the case that was drawn at a third
    of the page with its title and legend cut off."""
    report = build_report([multirun], tmp_path / "both")
    assert_figures_fit_the_page(report.html, report.figures, tmp_path)
    copies = copy_runs(multirun, tmp_path / "runs")
    outcome = [c for c in copies if yaml.safe_load((c / "config.yaml").read_text())["advantage"]["name"] == "outcome"]
    report = build_report(outcome, tmp_path / "outcome")
    assert "<h2>Task: copy</h2>" in report.html.read_text()
    assert_figures_fit_the_page(report.html, report.figures, tmp_path)


def test_groups_by_config_not_directory_names(multirun, tmp_path):
    copies = copy_runs(multirun, tmp_path / "runs")  # neutral names: run-00, run-01, ...
    first_two = [yaml.safe_load((c / "config.yaml").read_text()) for c in copies[:2]]
    assert [(c["importance_sampling"]["level"], c["advantage"]["name"]) for c in first_two] == [
        ("token", "outcome")
    ] * 2

    def rows(lr_per_copy: list[float]) -> set[str]:
        for copy, config, lr in zip(copies, first_two, lr_per_copy):
            config["trainer"]["learning_rate"] = lr
            (copy / "config.yaml").write_text(yaml.safe_dump(config))
        html = build_report(copies, tmp_path / "out").html.read_text()
        return set(re.findall(r"<tr><td class='text'>([^<]*)</td><td>(\d+)</td>", html))

    # One seed trained with another learning rate is never averaged with the other: it is its own condition.
    assert {
        ("GRPO (token) · outcome advantage trainer.learning_rate=0.5", "1"),
        ("GRPO (token) · outcome advantage trainer.learning_rate=0.001", "1"),
        ("GSPO (sequence) · process advantage trainer.learning_rate=0.001", "2"),
    } <= rows([0.5, 0.001])
    # A learning rate shared by a level's seeds (e.g. tuned per level) keeps the comparison and shows in the label.
    assert {
        ("GRPO (token) · outcome advantage · trainer.learning_rate=0.5", "2"),
        ("GSPO (sequence) · process advantage · trainer.learning_rate=0.001", "2"),
    } <= rows([0.5, 0.5])


def test_empty_directory_is_a_one_line_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "harness.report", str(tmp_path)], cwd=ROOT, check=False, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip() == f"harness.report: error: no harness runs found under {tmp_path} "
        "(expected run directories with config.yaml)"
    )
    assert not (tmp_path / "report").exists()


def test_runs_missing_metrics_are_skipped_with_a_warning(multirun, tmp_path, capsys):
    copies = copy_runs(multirun, tmp_path / "runs")
    broken = copies[0], copies[-1]  # two different conditions: each keeps one seed
    (broken[0] / "metrics.jsonl").unlink()
    (broken[1] / "metrics.jsonl").write_text('{"step": 4, "train_runtime": 1.0}\n')  # killed before its first log
    assert report_main([str(tmp_path / "runs")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert (
        f"harness.report: warning: skipping {broken[0]}: no metrics.jsonl (the run failed or has not logged yet)" in err
    )
    assert f"harness.report: warning: skipping {broken[1]}: metrics.jsonl has no training records" in err
    html = (tmp_path / "runs" / "report" / "report.html").read_text()
    assert "10 run(s) in 6 condition(s)" in html and "Skipped or partial input" in html
    # Both outcome conditions are down to one seed: no test, said so, on the held-out metric the comparison rests on.
    assert re.search(
        r"With outcome advantage: GSPO-token vs GRPO: final eval/greedy/reward \S+ vs \S+ \(1 vs 1 seeds\) — no test",
        html,
    )

    for copy in copies:
        (copy / "metrics.jsonl").unlink(missing_ok=True)
    with pytest.raises(ReportInputError, match="none of the 12 run"):
        build_report([tmp_path / "runs"])


def test_mixed_tasks_get_one_section_each(multirun, addition_run, tmp_path, capsys):
    assert report_main([str(multirun), str(addition_run), "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "2 different tasks (reward.name: addition, copy)" in err and "each task gets its own section" in err
    html = (tmp_path / "report.html").read_text()
    assert "<h2>Task: addition</h2>" in html and "<h2>Task: copy</h2>" in html
    assert "<h2>Across tasks (addition, copy)</h2>" in html and "P(GSPO-token &gt; GSPO) = " in html
    assert {"copy_reward.png", "addition_reward.png"} <= {p.name for p in tmp_path.glob("*.png")}


def test_study_section_from_journal_storage(multirun, tmp_path):
    """A real Optuna journal in the sweep dir whose trials are the real runs, in dirs named by trial number, with
    the parameters those runs actually used."""
    import optuna
    from optuna.distributions import CategoricalDistribution, IntDistribution
    from optuna.storages.journal import JournalFileBackend

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    journal = sweep / "study.journal"
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    study = optuna.create_study(study_name="levels", direction="maximize", storage=storage)
    space = {
        "importance_sampling": CategoricalDistribution(["token", "sequence", "sequence_token"]),
        "advantage": CategoricalDistribution(["outcome", "process"]),
        "seed": IntDistribution(0, 1),
    }
    for number, run in enumerate(copy_runs(multirun, tmp_path / "runs")):
        config = yaml.safe_load((run / "config.yaml").read_text())
        params = {
            "importance_sampling": config["importance_sampling"]["level"],
            "advantage": config["advantage"]["name"],
            "seed": config["seed"],
        }
        objective = json.loads((run / "summary.json").read_text())["objective"]
        study.add_trial(optuna.trial.create_trial(params=params, distributions=space, value=objective))
        run.rename(sweep / str(number))

    report = build_report([sweep])
    html = report.html.read_text()
    assert "<h2>Study: levels</h2>" in html and "12 complete" in html
    assert {"study_history.png", "study_importances.png"} <= {p.name for p in report.figures}
    assert_figures_fit_the_page(report.html, report.figures, tmp_path)
    best = study.best_trial
    command = " ".join(["python -m harness.run", *(f"{k}={v}" for k, v in best.params.items())])
    assert f"<code>{command}</code><br><span class='meta'>{sweep / str(best.number)}</span>" in html

    # An explicit storage naming a study that is not there: a warning, and the runs' report all the same.
    partial = build_report([sweep], tmp_path / "out", storage=str(journal), study_name="missing")
    assert any("no study 'missing'" in w for w in partial.warnings)
    assert "<h2>Task: copy</h2>" in partial.html.read_text()


def test_report_of_a_real_study(tmp_path):
    """The study helper's own sweep dir: journal, trial-NNNN run dirs, a worker dir of logs, best.json."""
    sweep = tmp_path / "study"
    result = run_cli("sweep=smoke", f"sweep.dir={sweep}", "sweep.n_trials=2", "logger=none")
    assert result.returncode == 0, result.stderr[-3000:]
    report = build_report([sweep])
    assert report.warnings == []  # the worker's log dir is not mistaken for a failed run
    html = report.html.read_text()
    assert "<h2>Study: smoke</h2>" in html and "study_history.png" in {p.name for p in report.figures}
    best = json.loads((sweep / "best.json").read_text())
    assert f"<code>{escape(best['command'])}</code><br><span class='meta'>{best['dir']}</span>" in html


def test_runs_whose_noise_floor_reaches_the_clip_range_are_flagged(bf16_run, tmp_path):
    run_dir, _ = bf16_run  # debug=fast logger=none trainer.bf16=true
    html = build_report([run_dir], tmp_path / "out").html.read_text()
    assert "GSPO-token (sequence_token) (process advantage): clip decisions there follow rounding" in html


def test_interrupted_runs_are_skipped_with_a_warning(tmp_path):
    """A run stopped by SIGINT/SIGTERM has no final window (a study reran its trial under another number)."""
    config = {
        "reward": {"name": "copy"},
        "importance_sampling": {"level": "token", "epsilon": 0.2, "epsilon_high": 0.28},
        "advantage": {"name": "outcome"},
    }
    (tmp_path / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    (tmp_path / "metrics.jsonl").write_text('{"step": 2, "reward": 0.5}\n{"step": 3, "reward": 0.25}\n')
    (tmp_path / "summary.json").write_text('{"status": "finished", "steps": 3}')
    warnings: list[str] = []
    assert load_run(tmp_path, warnings) is not None and not warnings
    (tmp_path / "summary.json").write_text('{"status": "interrupted", "steps": 3}')
    assert load_run(tmp_path, warnings) is None
    assert warnings == [f"skipping {tmp_path}: interrupted by a signal after 2 logged step(s)"]


def test_runs_are_listed_in_hydra_job_order(tmp_path):
    """Hydra numbers its job dirs 0-..., 1-..., 10-...: the runs table follows the job numbers."""
    for name in ["10-copy-s1", "2-copy-s0", "1-copy-s2", "copy-extra"]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.yaml").write_text("{}\n")
    found = [p.name for p in find_run_dirs(tmp_path, [])]
    assert found == ["1-copy-s2", "2-copy-s0", "10-copy-s1", "copy-extra"]
