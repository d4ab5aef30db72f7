"""Passwords in URLs (`postgresql://user:PASSWORD@host/db` in `sweep.storage`) never reach a file or a log line.

The process keeps the real URL in its config to connect; what is written is masked: Hydra's saved configs (after
Hydra wrote them, at job start), the run's config.yaml and wandb config, best.json, the command line (which wandb
records) and every log record.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

# `scheme://user:password@`; Hydra escapes the colons of overrides it saves (`postgresql\://user\:password@`).
_PASSWORD = re.compile(r"(://[^/@\s]*?:)[^@/\s]+@")
MASK = "***"


def mask(text: str) -> str:
    return _PASSWORD.sub(rf"\g<1>{MASK}@", text)


def masked(value):
    """A copy of a config-like value (dicts, lists, strings) with every URL password masked."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {key: masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [masked(item) for item in value]
    return value


def mask_logs() -> None:
    """Mask every log record of this process (Hydra logs each job's overrides as it launches it)."""
    make_record = logging.getLogRecordFactory()
    if getattr(make_record, "masks_passwords", False):
        return

    def masking_record(*args, **kwargs) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            record.msg, record.args = mask(record.getMessage()), None
        except Exception:
            pass  # a malformed record: logging reports it when it is emitted
        return record

    masking_record.masks_passwords = True
    logging.setLogRecordFactory(masking_record)


def mask_argv() -> None:
    """Mask this process's command line, which wandb records; only once Hydra has parsed it."""
    sys.argv[:] = [mask(arg) for arg in sys.argv]


def mask_files(*paths: Path) -> None:
    """Rewrite files that hold a password, masked. Atomic: jobs of one multirun may share a file (multirun.yaml)."""
    for path in paths:
        try:
            text = path.read_text()
        except OSError:
            continue  # not written (e.g. hydra.output_subdir=null)
        if mask(text) != text:
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            temporary.write_text(mask(text))
            os.replace(temporary, path)
