"""Hydra callback that writes the comparison report when a multirun ends (used by the comparison presets,
`experiment=gspo_token_vs_baselines` and `experiment=credit_estimators`).

Add to any multirun with `+hydra.callbacks.report._target_=harness.report.callback.ReportCallback`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class ReportCallback(Callback):
    """`finalists: true` (experiment=tuned_comparison): report each study's winning finalist re-runs."""

    def __init__(self, finalists: bool = False) -> None:
        self.finalists = finalists

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from harness.report.__main__ import main  # matplotlib and optuna only once the jobs are done

        # A report failure must not turn a finished multirun into an error: main prints its one-line message.
        main([str(Path(config.hydra.sweep.dir)), *(["--finalists"] if self.finalists else [])])
        sys.stdout.flush()
