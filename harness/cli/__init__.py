"""The command line of `python -m harness.run` (harness/run.py): `preflight` checks and composes every job before
Hydra writes anything; `task` is the job wrapper Hydra calls (dispatch to one run or a study worker, one-line errors,
exit codes).

May import: every other layer.
"""
