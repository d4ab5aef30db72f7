"""Comparison report: `python -m harness.report PATH [PATH ...]` turns runs, multiruns and studies into one page.

Kept import-free on purpose: Hydra imports `harness.report.callback` when the preset's multirun starts, and that must
not pull in matplotlib or optuna before the jobs run.

May import: `harness.study` (a study's storage), `harness.training` (what a run directory holds) and the layers
below them.
"""
