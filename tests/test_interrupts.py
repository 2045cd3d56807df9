"""Ctrl-C, SIGTERM and a closed pipe: one line, the signal's exit code, checkpoints kept, and
the same command resumes; from the command's first instant, while torch is still importing."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.running.store import read_records
from tests.processes import console_script, frozen, interruptible, part_way, signal_state

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


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupt_exits_with_one_line_and_the_rerun_resumes(tmp_path, signum, code):
    """Interrupted while a run trains (read from its checkpoint with the command stopped, so a
    busy machine cannot move the moment): the run is not recorded, its checkpoint stays, and the
    same command resumes it."""
    suite, out = tmp_path / "suite.yaml", tmp_path / "out"
    suite.write_text(SUITE)
    process = subprocess.Popen(interruptible(command(suite, out)), stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    found = None
    while found is None:
        assert process.poll() is None, "the suite ended before it could be interrupted"
        time.sleep(0.05)
        with frozen(process):
            finished = {record["key"] for record in read_records(out)}
            found = part_way(out / "checkpoints", 60, finished)
            if found:
                process.send_signal(signum)  # lands as the command continues
                sent = signal_state(process.pid)
    interrupted, saved = found
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)  # it ends in a second or two; if not, the kernel's view then
    later = signal_state(process.pid)
    _, error = process.communicate(timeout=600)  # a hang guard
    assert process.returncode == code, (  # and what was read and held as the signal went
        f"{error}\nsignalled as {interrupted}'s checkpoint held {saved} epochs, the records "
        f"{sorted(finished)}; its signals then:\n{sent}\n30 s later:\n{later}")
    assert "Traceback" not in error
    assert error.strip().splitlines()[-1].endswith("rerun the same command to resume")
    assert len(error.strip().splitlines()) == 1
    checkpoint = out / "checkpoints" / f"{interrupted}.pt"
    assert checkpoint.is_file()
    assert interrupted not in {r["key"] for r in read_records(out)}  # not recorded as failed

    finished = subprocess.run(command(suite, out), capture_output=True, text=True, timeout=1800)
    assert finished.returncode == 0, finished.stderr
    records = {r["key"]: r for r in read_records(out)}
    assert [r["status"] for r in records.values()] == ["ok", "ok"]
    assert all(len(r["epochs"]) == 60 for r in records.values())
    assert records[interrupted]["resumed_from_epoch"] > 0
    assert not checkpoint.exists()


def test_a_closed_pipe_is_silent():
    """``harness list | true``: the reader is gone before the listing is written."""
    listing = subprocess.run(f"{sys.executable} -m harness.cli list | true", shell=True,
                             capture_output=True, text=True, timeout=600)  # a hang guard
    assert listing.stderr == ""


SLOW_TORCH = """
import os, pathlib, time
pathlib.Path(os.environ["TORCH_IMPORTING"]).touch()
time.sleep(600)
"""


@contextlib.contextmanager
def sigint_ignored_here(ignored: bool):
    """This process ignoring SIGINT (as pytest does when started as a script's background
    job) while the command starts, or not."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if ignored else None
    try:
        yield
    finally:
        if ignored:
            signal.signal(signal.SIGINT, previous)


def interrupted_while_torch_imports(tmp_path: Path, words: list[str], signum: int,
                                   start=interruptible) -> tuple[int, str]:
    """The console script (started through ``start``) interrupted while torch imports (a torch
    here that says when its import starts, then takes its time): its exit code and stderr."""
    importing = tmp_path / "importing"
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text(SLOW_TORCH)
    environment = {**os.environ, "TORCH_IMPORTING": str(importing),
                   "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(start(console_script(*words)), env=environment,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        while not importing.exists():
            assert process.poll() is None, process.communicate()[1]
            time.sleep(0.01)
        process.send_signal(signum)
        _, error = process.communicate(timeout=120)  # a hang guard: it ends at once
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    return process.returncode, error.strip()


@pytest.mark.parametrize("run, signum, code, line", [
    (True, signal.SIGINT, 130, "harness: interrupted; rerun the same command to resume"),
    (True, signal.SIGTERM, 143, "harness: stopped by SIGTERM; rerun the same command to resume"),
    (False, signal.SIGINT, 130, "harness: interrupted"),
    (False, signal.SIGTERM, 143, "harness: stopped by SIGTERM"),
])
@pytest.mark.parametrize("parent_ignores_sigint", [False, True])
def test_an_interrupt_while_torch_imports_is_one_line_and_the_signals_code(
        tmp_path, run, signum, code, line, parent_ignores_sigint):
    """``harness run`` and ``harness list`` stopped in their first seconds; whatever this
    process does with SIGINT, the command starts with it as a terminal gives it."""
    suite, out = tmp_path / "suite.yaml", tmp_path / "out"
    suite.write_text(SUITE)
    words = ["run", str(suite), "--out", str(out)] if run else ["list"]
    with sigint_ignored_here(parent_ignores_sigint):
        assert interrupted_while_torch_imports(tmp_path, words, signum) == (code, line)
    assert not out.exists()  # nothing was written yet


def blocking_both(command: list[str]) -> list[str]:
    """``command`` started with SIGINT and SIGTERM blocked (as Ray starts its processes, or a
    thread holding them off while it writes), their dispositions the default otherwise (this
    process may ignore SIGINT, as a script's background job does: see :func:`interruptible`)."""
    return [sys.executable, "-c", "import os, signal, sys; "
            "signal.signal(signal.SIGINT, signal.SIG_DFL); "
            "signal.signal(signal.SIGTERM, signal.SIG_DFL); signal.pthread_sigmask("
            "signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM}); "
            "os.execv(sys.argv[1], sys.argv[1:])", *command]


def test_signals_blocked_by_whoever_started_the_command_are_unblocked(tmp_path):
    assert interrupted_while_torch_imports(tmp_path, ["list"], signal.SIGINT,
                                           start=blocking_both) == (130, "harness: interrupted")


def test_the_command_line_imports_nothing_heavy_before_its_handlers():
    """``import harness`` and the command's own module leave torch and the rest for later."""
    loaded = subprocess.run([sys.executable, "-c", "import sys, harness, harness.cli; "
                             "print(' '.join(sys.modules))"], capture_output=True, text=True,
                            check=True).stdout.split()
    heavy = {"torch", "numpy", "pandas", "matplotlib", "scipy", "ray", "pluggy", "yaml"}
    assert not heavy & {name.split(".")[0] for name in loaded}
