"""The service as a user runs it: `crisiswatch run` in a subprocess, stopped by a signal."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, config_doc, free_port

pytestmark = pytest.mark.integration


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=2) as r:
        body: dict[str, object] = json.loads(r.read())
        return body


def start(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cfg = tmp / "c.yaml"
    cfg.write_text(yaml.safe_dump(config_doc(tmp, port)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "run", "--config", str(cfg), "--speed", "120"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if get_json(url + "/healthz").get("processed"):
                return proc, url
        except OSError:
            pass
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("service did not come up")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_within_5s_and_flushes_state(tmp_path: Path, sig: signal.Signals) -> None:
    proc, url = start(tmp_path)
    time.sleep(2)  # a few simulated minutes: buckets close, detectors learn
    watermark = get_json(url + "/healthz")["watermark"]
    t0 = time.monotonic()
    proc.send_signal(sig)
    code = proc.wait(timeout=10)
    took = time.monotonic() - t0
    assert code == 0 and took < 5.0, (code, took)
    with sqlite3.connect(tmp_path / "cw.db") as db:
        keys = dict(db.execute("SELECT key, value FROM kv").fetchall())
    assert keys.get("detectors")  # baselines survive the restart
    saved = json.loads(keys["aggregator"])["closed_until"]
    assert isinstance(watermark, float) and saved >= watermark


def test_a_port_in_use_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    doc = config_doc(tmp_path)
    doc["sources"] = {"demo": {"enabled": False}}
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        run = subprocess.run(
            [sys.executable, "-m", "monitor.cli", "run", "--config", str(cfg), "--port", port],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "address already in use" in errors[0], run.stderr
    assert f"server.host/server.port: cannot listen on 127.0.0.1:{port}" in errors[0]


def test_a_host_that_does_not_resolve_names_the_setting(tmp_path: Path) -> None:
    doc = config_doc(tmp_path)
    doc["sources"] = {"demo": {"enabled": False}}
    doc["server"]["host"] = "999.1.1.1"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    run = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "run", "--config", str(cfg)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: server.host/server.port: cannot listen on 999.1.1.1:0: Name or service not known"
    ], run.stderr
