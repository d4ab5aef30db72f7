"""`hydra/launcher=slurm`: hydra-submitit-launcher's SLURM launcher with two changes.

- Submission runs inside `submitit.helpers.clean_env()`: sbatch copies the submitting shell's environment, and the
  SLURM_* variables of an enclosing allocation (salloc, or a multirun started from a batch job) would otherwise
  override the new jobs' own resources.
- Waiting polls `sacct` every `poll_interval_s` for all jobs at once and reports a job that left the queue without a
  result (cancelled, killed, out of memory, node failure) as failed at once. Upstream waits job by job with
  `job.results()`, whose `sacct` polls back off to once per 10 minutes, then waits 15 s more per missing result, and
  aborts the wait at the first failure.

On the compute node each job runs inside `harness.runtime.slurm.requeue_on_preemption`: SLURM's warning signal makes the
trainer save a checkpoint, then upstream's `checkpoint` requeues the same Hydra job (same job number, same output
directory), which resumes from that checkpoint. A job of several tasks (`nodes` x `tasks_per_node`) runs the Hydra
job once per task, each task one torch.distributed rank (harness/runtime/distributed.py).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from omegaconf import OmegaConf

from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

log = logging.getLogger(__name__)


class JobFailed(RuntimeError):
    """A SLURM job that ended without returning a result."""


class HarnessSlurmLauncher(SlurmLauncher):
    def __init__(self, poll_interval_s: float = 5.0, result_grace_s: float = 3.0, **params) -> None:
        super().__init__(**params)
        self.poll_interval_s = poll_interval_s
        self.result_grace_s = result_grace_s

    def __call__(self, *args, **kwargs) -> JobReturn:
        """One job (or one task of it), on the compute node: checkpoint and requeue on SLURM's warning signal
        (harness/runtime/slurm.py)."""
        from harness.runtime.distributed import close, from_slurm_tasks
        from harness.runtime.slurm import requeue_on_preemption

        from_slurm_tasks()  # before anything reads the environment: each task is a rank
        with requeue_on_preemption():
            returned = super().__call__(*args, **kwargs)
        if returned.status != JobStatus.FAILED:
            close()  # the task's process ends with its one job
        return returned

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
        import submitit

        with submitit.helpers.clean_env():
            try:
                jobs = self._submit(job_overrides, initial_job_idx)
            except submitit.core.utils.FailedJobError as refused:  # e.g. more nodes or CPUs than the partition has
                reason = str(refused).strip().splitlines()[-1].removeprefix("sbatch: error: ")
                print(f"harness: error: sbatch refused the jobs: {reason}", file=sys.stderr, flush=True)
                raise SystemExit(2) from None
        self._wait(jobs)
        returns = [self._outcome(job, overrides) for job, overrides in zip(jobs, job_overrides)]
        failed = sum(r.status == JobStatus.FAILED for r in returns)
        if failed:
            log.error(f"{failed} of {len(jobs)} SLURM jobs failed")
        else:  # the jobs printed their summaries to their own logs: say where everything is
            log.info(f"{len(jobs)} SLURM job(s) finished; outputs in {self.config.hydra.sweep.dir}")
        return returns

    def _submit(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list:
        """One SLURM array for the batch, parameters mapped as upstream does."""
        import submitit

        params = dict(self.params)
        executor = submitit.AutoExecutor(
            cluster="slurm", folder=params.pop("submitit_folder"), slurm_max_num_timeout=params.pop("max_num_timeout")
        )
        shared = set(OmegaConf.structured(BaseQueueConf).keys())  # unprefixed keys; the others get `slurm_`
        executor.update_parameters(**{k if k in shared else f"slurm_{k}": v for k, v in params.items()})
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info(f"Submitit 'slurm' sweep output dir : {sweep_dir}")
        calls = []
        for num, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{num} : {' '.join(filter_overrides(overrides))}")
            calls.append((list(overrides), "hydra.sweep.dir", num, f"job_id_for_{num}", Singleton.get_state()))
        jobs = executor.map_array(self, *zip(*calls))
        last = f" .. {jobs[-1].job_id}" if len(jobs) > 1 else ""
        log.info(f"submitted {len(jobs)} SLURM job(s): {jobs[0].job_id}{last}")
        return jobs

    def _wait(self, jobs: list) -> None:
        """Until every job has a result file or a final SLURM state; log each failure as it happens."""
        watcher = jobs[0].watcher  # shared by all SLURM jobs: one sacct call covers the whole array
        running = list(jobs)
        while running:
            watcher.update()
            still = []
            for job in running:
                if job.paths.result_pickle.exists():
                    continue
                state = watcher.get_state(job.job_id, mode="cache")
                if watcher.is_done(job.job_id, mode="cache"):
                    if not state.startswith("COMPLETED"):
                        log.error(f"SLURM job {job.job_id} ended {state}; log: {job.paths.stderr}")
                    continue
                still.append(job)
            running = still
            if running:
                time.sleep(self.poll_interval_s)

    def _outcome(self, job, overrides: Sequence[str]) -> JobReturn:
        """The job's own JobReturn, or a failed one naming the SLURM state and the log when it left none. In a job
        of several tasks (ranks) that is rank 0's, which every rank agrees with, unless another rank failed."""
        deadline = time.monotonic() + self.result_grace_s
        while not job.paths.result_pickle.exists() and time.monotonic() < deadline:
            os.stat(job.paths.folder)  # refresh NFS attribute caches
            time.sleep(0.5)
        if job.paths.result_pickle.exists():
            try:
                returned = job.task(0).results()[0]
                if returned.status != JobStatus.FAILED:
                    self._check_other_ranks(job)
                return returned
            except Exception as error:  # raised outside Hydra's run_job, e.g. the pickle could not be loaded
                failure: Exception = JobFailed(f"SLURM job {job.job_id} failed: {str(error).strip().splitlines()[0]}")
        else:
            state = job.watcher.get_state(job.job_id, mode="cache")
            failure = JobFailed(f"SLURM job {job.job_id} ended {state} without a result; log: {job.paths.stderr}")
        return JobReturn(overrides=list(overrides), status=JobStatus.FAILED, _return_value=failure)

    @staticmethod
    def _check_other_ranks(job) -> None:
        """Raise when a task other than rank 0 left no result (killed) or a failure. Checked without waiting: the
        job is over, and submitit would wait half a minute for each missing file."""
        for task in map(job.task, range(1, job.num_tasks)):
            if not task.paths.result_pickle.exists():
                raise JobFailed(f"task {task.task_id} ended without a result; log: {task.paths.stderr}")
            returned = task.results()[0]
            if returned.status == JobStatus.FAILED:
                raise JobFailed(f"task {task.task_id}: {returned._return_value}")
