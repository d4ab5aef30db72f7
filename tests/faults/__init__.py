"""The fault-injection tier (`python -m pytest -m faults`): each cause of a broken promise, injected through the real
command line — upstream refusals while a job is built, user code failing on a later call, SIGHUP from a closed
terminal, a full or read-only filesystem (a tmpfs mounted in the test), damaged journals and unreadable run files.
Every test asserts the exit code, the one line, what is on disk and that nothing logged was lost."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path


def the_line(result: subprocess.CompletedProcess, prefix: str = "harness: error: ") -> str:
    """The process's one line: no traceback, and exactly one line of the harness's on stderr, starting `prefix`."""
    err = result.stderr
    assert "Traceback" not in err, err[-3000:]
    ours = [line for line in err.splitlines() if line.startswith(("harness:", "harness.report:"))]
    assert len(ours) == 1, err[-3000:]
    assert ours[0].startswith(prefix), ours[0]
    return ours[0]


def records(run_dir: Path) -> list[dict]:
    """metrics.jsonl, every line parsed (a half-written line fails here), steps increasing."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    parsed = [json.loads(line) for line in lines]
    steps = [r["step"] for r in parsed]
    assert steps == sorted(set(steps)), steps
    return parsed
