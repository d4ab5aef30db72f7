"""`logger.mode=auto` with credentials but no reachable server decides within seconds and falls back to offline.

Real TCP probes against loopback sockets only: a closed port (refused), a listener whose accept queue is full (SYNs
dropped: what a firewalled or offline network looks like) and an open listener (online)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from harness.training.sinks import PROBE_TIMEOUT_S, wandb_mode

REPO = Path(__file__).resolve().parents[2]
AUTO = OmegaConf.create({"mode": "auto"})
FAKE_KEY = "f" * 40


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def credentials(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)  # conftest forces offline for every other test
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    for proxy in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)


def decide(monkeypatch, capsys, url: str) -> tuple[str, float, list[str]]:
    monkeypatch.setenv("WANDB_BASE_URL", url)
    started = time.monotonic()
    mode = wandb_mode(AUTO)
    return mode, time.monotonic() - started, capsys.readouterr().err.splitlines()


def test_closed_port_falls_back_to_offline_at_once(credentials, monkeypatch, capsys):
    url = f"http://127.0.0.1:{closed_port()}"
    mode, seconds, err = decide(monkeypatch, capsys, url)
    assert mode == "offline" and seconds < 1
    assert err == [f"harness: wandb server {url} unreachable (Connection refused): logging offline, `wandb sync` later"]


def test_silent_server_falls_back_to_offline_within_the_probe_timeout(credentials, monkeypatch, capsys):
    with socket.socket() as server, socket.socket() as queued:
        server.bind(("127.0.0.1", 0))
        server.listen(0)  # never accepts: once one connection waits in the queue, further SYNs are dropped
        queued.connect(server.getsockname())
        mode, seconds, err = decide(monkeypatch, capsys, f"http://127.0.0.1:{server.getsockname()[1]}")
    assert mode == "offline" and PROBE_TIMEOUT_S - 0.5 < seconds < PROBE_TIMEOUT_S + 1
    assert len(err) == 1 and "unreachable" in err[0] and "logging offline" in err[0]


def test_reachable_server_with_credentials_is_online(credentials, monkeypatch, capsys):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        mode, seconds, err = decide(monkeypatch, capsys, f"http://127.0.0.1:{server.getsockname()[1]}")
    assert (mode, err) == ("online", []) and seconds < 1


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999", "not a url", "http://"])
def test_malformed_base_url_falls_back_to_offline(credentials, monkeypatch, capsys, url):
    mode, seconds, err = decide(monkeypatch, capsys, url)
    assert mode == "offline" and len(err) == 1 and seconds < PROBE_TIMEOUT_S + 1


def test_without_credentials_auto_is_offline_silently(credentials, monkeypatch, capsys):
    monkeypatch.delenv("WANDB_API_KEY")
    assert decide(monkeypatch, capsys, f"http://127.0.0.1:{closed_port()}")[::2] == ("offline", [])


@pytest.mark.e2e
def test_run_with_key_and_no_server_logs_offline(tmp_path):
    """The whole run: a key, an unreachable server, `logger.mode=auto` -> an offline wandb run and one line."""
    env = {key: value for key, value in os.environ.items() if key != "WANDB_MODE"}
    env.update(WANDB_API_KEY=FAKE_KEY, WANDB_BASE_URL=f"http://127.0.0.1:{closed_port()}", NETRC=str(tmp_path / "x"))
    result = subprocess.run(
        [sys.executable, "-m", "harness.run", "debug=fast", "logger.mode=auto", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ours = [line for line in result.stderr.splitlines() if line.startswith("harness:")]
    assert len(ours) == 1 and "unreachable (Connection refused): logging offline" in ours[0]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["wandb_mode"] == "offline"
    assert len(list((tmp_path / "run" / "wandb").glob("offline-run-*"))) == 1
