"""A journal file's integrity: a damaged record found before anything reads or appends to it.

Optuna's JournalFileBackend appends one JSON operation per line. A worker killed mid-write, or a full disk, leaves the
last line cut short; Optuna reads past it without a word (the half-written trial shows as RUNNING), and the next
append lands on the half line, which makes the whole journal unreadable from then on (`JSONDecodeError` in every
resume, `show` and `best`). Here:

- `inspect` finds the first damaged record: a last line without its newline, a line that is not JSON, or JSON that
  is not an Optuna operation.
- A worker (`repair`) truncates the file to the last complete record before the damage, under Optuna's own journal
  lock, keeps the original as a backup, and says in one warning line what was cut.
- The read-only commands (`python -m harness.study show|best`, the report) open the complete records in memory
  (`ReadOnlyJournal`), say what is damaged, and show the rest; they never change the file.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from optuna.storages.journal import BaseJournalBackend

SETTLE_S = 0.5  # a half line may be a live worker's write in flight: looked at again after this long


@dataclass(frozen=True)
class Damage:
    """The first damaged record of a journal file and what follows it."""

    path: Path
    line: int  # 1-based number of the first damaged line
    offset: int  # bytes of complete records before it
    size: int  # the file's size
    lines: int  # lines from the damaged one to the end
    what: str  # "a half-written last record", "line 7 is not JSON", ...

    @property
    def cut(self) -> str:
        extra = f" and the {self.lines - 1} line(s) after it" if self.lines > 1 else ""
        return f"{self.what} (line {self.line}, {self.size - self.offset} bytes{extra})"


def records(path: Path) -> tuple[list[dict], Damage | None]:
    """The journal's complete records up to the first damaged one, and that damage (None: the file is whole)."""
    data = path.read_bytes()
    logs: list[dict] = []
    offset = 0
    lines = data.splitlines(keepends=True)
    for number, line in enumerate(lines, start=1):
        what = _problem(line, number, last=number == len(lines))
        if what is None:
            logs.append(json.loads(line))
            offset += len(line)
            continue
        return logs, Damage(path, number, offset, len(data), len(lines) - number + 1, what)
    return logs, None


def _problem(line: bytes, number: int, last: bool) -> str | None:
    if not line.endswith(b"\n"):
        return "a half-written last record" if last else f"line {number} is cut short"
    try:
        record = json.loads(line)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        return f"line {number} is not a JSON record"
    if not isinstance(record, dict) or "op_code" not in record:
        return f"line {number} is not an Optuna journal operation"
    return None


def inspect(path: Path) -> Damage | None:
    """The journal's first damaged record; a half-written last record is looked at again after SETTLE_S (a live
    worker may be writing it)."""
    _, damage = records(path)
    if damage is not None and damage.lines == 1 and damage.what.startswith("a half-written"):
        time.sleep(SETTLE_S)
        _, damage = records(path)
    return damage


def warn(line: str) -> None:
    print(f"harness: warning: {line}", file=sys.stderr, flush=True)


def repair(path: Path, say: Callable[[str], None] = warn) -> Damage | None:
    """Before a worker appends: truncate a damaged journal to its last complete record, under Optuna's journal lock
    (no other worker is mid-write then), keeping the original beside it; one warning line. The damage, if any."""
    if not path.is_file() or path.stat().st_size == 0 or inspect(path) is None:
        return None
    from optuna.storages.journal import JournalFileSymlinkLock
    from optuna.storages.journal._file import get_lock_file

    with get_lock_file(JournalFileSymlinkLock(str(path))):  # the lock Optuna's JournalFileBackend takes to append
        _, damage = records(path)
        if damage is None:
            return None
        backup = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        shutil.copy2(path, backup)
        with path.open("r+b") as f:
            f.truncate(damage.offset)
    say(
        f"{path}: cut {damage.cut}; kept the {damage.line - 1} complete record(s) before it; "
        f"the damaged file is backed up as {backup.name}"
    )
    return damage


class ReadOnlyJournal(BaseJournalBackend):
    """A journal's complete records, in memory, for the read-only commands: appending is refused."""

    def __init__(self, logs: list[dict]) -> None:
        self.logs = logs

    def read_logs(self, log_number_from: int) -> Iterator[dict]:
        yield from self.logs[log_number_from:]

    def append_logs(self, logs: list[dict]) -> None:
        raise RuntimeError("a damaged journal is opened read-only; a study worker repairs it when it resumes")


def read_only(path: Path, say: Callable[[str], None] = warn) -> ReadOnlyJournal | None:
    """For a reader: None when the journal is whole (open it as usual), else its complete records in memory, with
    one warning line saying what is damaged."""
    damage = inspect(path)
    if damage is None:
        return None
    logs, damage = records(path)
    if damage is None:
        return None
    say(
        f"{path}: {damage.cut} is damaged; showing the {len(logs)} complete record(s) before it "
        "(a study worker repairs the file when it resumes the study)"
    )
    return ReadOnlyJournal(logs)
