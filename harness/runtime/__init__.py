"""The process a job runs in: signals and stopping at a step boundary (`stop`), several ranks (`distributed`), SLURM
preemption and requeue (`slurm`), and passwords kept out of files and logs (`redact`).

May import: `harness.config` (for `ConfigError`). Nothing here knows about models or studies.
"""
