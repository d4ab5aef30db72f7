"""The environment failing a run: a closed terminal (SIGHUP, through a real pseudo-terminal whose master is closed), a
full filesystem and one that turns read-only (a small tmpfs mounted in the test; skipped, saying why, where mounting
is not allowed). One line, exit code 129 / 1 / 2, everything logged so far kept, every metrics line complete."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import select
import shutil
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, wandb_summary
from tests.faults import records, the_line

NAME = "copy-sequence_token-process-s0"


def wait_for_logs(run_dir: Path, count: int, process: subprocess.Popen, timeout: float = 240, drain=None) -> None:
    deadline = time.monotonic() + timeout
    metrics = run_dir / "metrics.jsonl"
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= count):
        assert process.poll() is None, f"the run ended early ({process.returncode})"
        assert time.monotonic() < deadline, f"no {count} logged steps within {timeout} s"
        if drain is not None:
            drain()
        time.sleep(0.2)


def test_a_closed_terminal_stops_the_run_like_sigterm(tmp_path):
    """The run's controlling terminal goes away (the kernel sends SIGHUP to its session): it stops at a step boundary,
    keeps everything, finishes the wandb run and exits 129; writing to the dead terminal afterwards fails nothing."""
    run_dir = tmp_path / "run"
    master, slave = pty.openpty()
    terminal = os.ttyname(slave)

    def own_terminal() -> None:  # a new session whose controlling terminal is the pseudo-terminal
        os.setsid()
        fcntl.ioctl(os.open(terminal, os.O_RDWR), termios.TIOCSCTTY, 0)

    command = [sys.executable, "-m", "harness.run", "debug=fast", "logger.mode=offline", "trainer.max_steps=300",
               f"hydra.run.dir={run_dir}"]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stdin=slave, stdout=slave, stderr=slave, preexec_fn=own_terminal)
    os.close(slave)
    seen = bytearray()

    def drain() -> None:  # read what the run draws, as a terminal does (a full pty buffer would block the run)
        while select.select([master], [], [], 0)[0]:
            try:
                seen.extend(os.read(master, 65536))
            except OSError:
                return

    try:
        wait_for_logs(run_dir, 2, process, drain=drain)
    finally:
        os.close(master)  # the terminal closes
    assert process.wait(timeout=120) == 129
    summary = json.loads((run_dir / "summary.json").read_text())
    steps = [r["step"] for r in records(run_dir)]
    assert summary["status"] == "interrupted" and summary["steps"] == steps[-1] < 300
    assert not (run_dir / "final_model").exists()
    wandb = wandb_summary(run_dir)
    assert wandb["exit_code"] == 129 and wandb["state"] == "failed" and wandb["step"] == steps[-1]
    assert b"Traceback" not in seen


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of the given size under tmp_path (root only; skipped with the reason otherwise)."""
    mounted = []

    def mount(size: str) -> Path:
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip() or done.returncode}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def start(run_dir: Path, *overrides: str, prefix: tuple = ()) -> subprocess.Popen:
    command = [*prefix, sys.executable, "-m", "harness.run", "debug=fast", "logger=none", "trainer.max_steps=300",
               f"hydra.run.dir={run_dir}", *overrides]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def fill(point: Path) -> None:
    """Fill the filesystem to the last byte."""
    with contextlib.suppress(OSError), (point / "filler").open("wb", buffering=0) as f:
        while True:
            f.write(b"\0" * 4096)


def assert_failed_on(process: subprocess.Popen, run_dir: Path, problem: str) -> str:
    out, err = process.communicate(timeout=240)
    result = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    assert result.returncode == 1, err[-3000:]
    line = the_line(result)
    assert line.startswith(f"harness: error: {NAME} failed after step "), line
    assert f": {problem} writing {run_dir}/" in line, line
    assert f"kept in {run_dir}: metrics.jsonl (every logged step)" in line
    return line


def test_a_full_disk_mid_run_keeps_every_logged_step(small_disk):
    disk = small_disk("16m")
    run_dir = disk / "run"
    process = start(run_dir)
    wait_for_logs(run_dir, 2, process)
    fill(disk)
    line = assert_failed_on(process, run_dir, "No space left on device (ENOSPC)")
    steps = [r["step"] for r in records(run_dir)]  # every line a complete record: a cut write was taken back
    assert len(steps) >= 2
    if "no summary.json (No space left on device)" in line:
        assert not (run_dir / "summary.json").exists()
    else:
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["status"] == "failed" and summary["steps"] == steps[-1]
    (disk / "filler").unlink()


def test_a_file_made_unwritable_mid_run_keeps_every_logged_step(tmp_path):
    """EACCES: the run without the capability that lets root write through any file mode (setpriv), its metrics file
    made read-only after two logs. The run ends in one line; summary.json (the directory is still writable) says why."""
    setpriv = shutil.which("setpriv")
    if setpriv is None or os.geteuid() != 0:
        pytest.skip("needs root and util-linux's setpriv to drop CAP_DAC_OVERRIDE")
    run_dir = tmp_path / "run"
    process = start(run_dir, prefix=[setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"])
    wait_for_logs(run_dir, 2, process)
    (run_dir / "metrics.jsonl").chmod(0o444)
    assert_failed_on(process, run_dir, "Permission denied (EACCES)")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["reason"].startswith("Permission denied (EACCES) writing ")
    assert summary["steps"] == records(run_dir)[-1]["step"] >= 2


def test_a_disk_too_full_to_start_is_one_line_and_leaves_nothing(small_disk):
    disk = small_disk("96k")  # Hydra's .hydra/ and run.log fit; the tiny model does not
    run_dir = disk / "run"
    process = start(run_dir)
    out, err = process.communicate(timeout=240)
    result = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    assert result.returncode == 2, err[-3000:]
    line = the_line(result)
    # safetensors reports the full disk in its own words (a SafetensorError, not an OSError)
    assert line.startswith("harness: error: model.source=tiny: loading the model: ") and "No space left" in line, line
    assert not run_dir.exists()
