"""Starting the ``harness`` command in a subprocess that a test then interrupts or kills, at a
moment chosen by what the command has written, not by the clock."""
from __future__ import annotations

import contextlib
import importlib.metadata
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import torch

#: Runs the rest of its arguments with SIGINT and SIGTERM at their defaults and unblocked.
_WITH_DEFAULT_SIGNALS = ("import os, signal, sys; "
                         "signal.signal(signal.SIGINT, signal.SIG_DFL); "
                         "signal.signal(signal.SIGTERM, signal.SIG_DFL); "
                         "signal.pthread_sigmask(signal.SIG_UNBLOCK, "
                         "{signal.SIGINT, signal.SIGTERM}); "
                         "os.execv(sys.argv[1], sys.argv[1:])")


def interruptible(command: list[str]) -> list[str]:
    """``command`` run with SIGINT and SIGTERM as a terminal gives them, whatever this process
    has: pytest started as a shell script's background job (``.ci/run &``) ignores SIGINT, a
    disposition every child inherits, and a command that ignores SIGINT runs to its end."""
    return [sys.executable, "-c", _WITH_DEFAULT_SIGNALS, *command]


def console_script(*arguments: str) -> list[str]:
    """The ``harness`` console script as installed (its entry point, run by this Python)."""
    (script,) = importlib.metadata.entry_points(group="console_scripts", name="harness")
    module, function = script.value.split(":")
    return [sys.executable, "-c", f"import sys; from {module} import {function}; "
                                  f"sys.exit({function}())", *arguments]


@contextlib.contextmanager
def frozen(process: subprocess.Popen) -> Iterator[None]:
    """``process`` and its group (started with ``start_new_session``) stopped inside the block:
    what the test reads of its files meanwhile stays true when it then signals it, however
    long this process was kept waiting by a busy machine."""
    os.killpg(process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):  # killed in the block
            os.killpg(process.pid, signal.SIGCONT)


def signal_state(pid: int) -> str:
    """What the kernel holds of ``pid``'s signals, per thread (``/proc``): pending to the
    process (ShdPnd) and to each thread (SigPnd), blocked (SigBlk), caught (SigCgt), as hex
    masks (bit n-1 is signal n); for a failure message, or "gone" once it has ended."""
    try:
        lines = []
        for task in sorted(Path(f"/proc/{pid}/task").iterdir(), key=lambda t: int(t.name)):
            fields = dict(line.split(":\t", 1) for line in
                          (task / "status").read_text().splitlines() if ":\t" in line)
            lines.append(f"thread {task.name} {fields['Name']} {fields['State']}: "
                         + " ".join(f"{key} {fields[key]}" for key in
                                    ("ShdPnd", "SigPnd", "SigBlk", "SigIgn", "SigCgt")))
        return "\n".join(lines)
    except (FileNotFoundError, ProcessLookupError):
        return "gone"


def part_way(checkpoints: Path, total: int, finished: set[str]) -> tuple[str, int] | None:
    """The key of a run with a checkpoint of fewer than ``total`` epochs and no record among
    ``finished`` — a run still training (read while its process is :func:`frozen`) — and the
    epochs its checkpoint holds."""
    for path in sorted(checkpoints.glob("*.pt")):
        epochs = torch.load(path, map_location="cpu", weights_only=True)["epochs"]
        if path.stem not in finished and len(epochs) < total:
            return path.stem, len(epochs)
    return None
