"""URL passwords are masked in any text the harness writes (harness/runtime/redact.py); hosts, ports and users stay."""

import logging

import pytest

from harness.runtime.redact import mask, mask_logs, masked


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://user:secret@db:5432/h", "postgresql://user:***@db:5432/h"),
        ("postgresql\\://user\\:secret@db\\:5432/h", "postgresql\\://user\\:***@db\\:5432/h"),  # Hydra's escapes
        ("postgresql://user:pa:ss@db/h", "postgresql://user:***@db/h"),  # a colon inside the password
        ("postgresql://:secret@db/h", "postgresql://:***@db/h"),  # no user name
        ("a=mysql://u:one@h/x,b=redis://v:two@k/0", "a=mysql://u:***@h/x,b=redis://v:***@k/0"),
        ("postgresql://user@db:5432/h", "postgresql://user@db:5432/h"),  # nothing to hide
        ("postgresql://db:5432/h and x@y", "postgresql://db:5432/h and x@y"),  # a port is not a password
        ("see https://api.wandb.ai", "see https://api.wandb.ai"),
    ],
)
def test_mask(text, expected):
    assert mask(text) == expected


def test_masked_config_and_log_records(caplog):
    config = {"sweep": {"storage": "postgresql://u:secret@h/db", "n": 3, "base": ["x=postgresql://u:p2@h/db"]}}
    assert masked(config) == {
        "sweep": {"storage": "postgresql://u:***@h/db", "n": 3, "base": ["x=postgresql://u:***@h/db"]}
    }
    factory = logging.getLogRecordFactory()
    mask_logs()
    try:
        with caplog.at_level(logging.INFO):
            logging.getLogger("hydra.launcher").info("\t#%d : %s", 0, "sweep.storage=postgresql\\://u\\:secret@h/db")
    finally:
        logging.setLogRecordFactory(factory)  # this test process only
    assert caplog.messages == ["\t#0 : sweep.storage=postgresql\\://u\\:***@h/db"]
