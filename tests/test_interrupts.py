"""Ctrl-C, SIGTERM and a closed pipe: one line, the signal's exit code, checkpoints kept, and
the same command resumes."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.running.store import read_records

SUITE = """
name: interrupts
runs:
  - task: point_cloud
    models: [node, hbnode]
    epochs: 60
    lr: 0.02
    solver: {method: rk4, options: {step_size: 0.25}}
"""


def command(suite: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "harness.cli", "run", str(suite), "--out", str(out),
            "--device", "cpu", "--quiet"]


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupt_exits_with_one_line_and_the_rerun_resumes(tmp_path, signum, code):
    suite, out = tmp_path / "suite.yaml", tmp_path / "out"
    suite.write_text(SUITE)
    process = subprocess.Popen(command(suite, out), stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    deadline = time.monotonic() + 120
    while not any((out / "checkpoints").glob("*.pt")) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signum)
    _, error = process.communicate(timeout=60)
    assert process.returncode == code, error
    assert "Traceback" not in error
    assert error.strip().splitlines()[-1].endswith("rerun the same command to resume")
    assert len(error.strip().splitlines()) == 1
    (checkpoint,) = (out / "checkpoints").glob("*.pt")
    assert not read_records(out)  # the interrupted run is not recorded as failed

    finished = subprocess.run(command(suite, out), capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr
    records = read_records(out)
    assert [r["status"] for r in records] == ["ok", "ok"]
    assert records[0]["resumed_from_epoch"] > 0 and len(records[0]["epochs"]) == 60
    assert not checkpoint.exists()


def test_a_closed_pipe_is_silent():
    """``harness list | true``: the reader is gone before the listing is written."""
    listing = subprocess.run(f"{sys.executable} -m harness.cli list | true", shell=True,
                             capture_output=True, text=True, timeout=120)
    assert listing.stderr == ""
