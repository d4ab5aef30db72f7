"""Comparison report: `python -m harness.report PATH [PATH ...]` turns runs, multiruns and studies into one page.

Kept import-free on purpose: Hydra imports `harness.report.callback` when the preset's multirun starts, and that must
not pull in matplotlib or optuna before the jobs run.
"""
