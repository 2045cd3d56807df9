"""Per-run checkpoints, so an interrupted run continues from its last finished epoch.

Checkpoints are read with ``torch.load(weights_only=True)``: tensors, numbers, strings, lists
and dicts only, so a crafted file in a results folder cannot execute code. What it holds is then
checked whole against the run it claims to be (:mod:`harness.running.checkpoint_content`). A
file that does not load that way or does not pass (crafted, torn, lying, from an older harness)
is moved aside with a warning and the run starts over. A checkpoint that cannot be saved (a full
disk, a file-size limit) stops the command as a storage failure
(:class:`CheckpointWriteError`), not the run as a failure of its own.
"""
from __future__ import annotations

import io
import logging
import os
import pickle
import random
import stat
import time
import zipfile
from pathlib import Path
from typing import Any, Sequence

import torch

from harness.running.checkpoint_content import checkpoint_problem
from harness.running.held_signals import signals_held
from harness.running.safe_files import Folder, UnsafePathError
from harness.running.store import StoreWriteError
from harness.suites.runspec import RunSpec

log = logging.getLogger("harness")

#: The folder of a results directory that runs checkpoint into.
CHECKPOINT_DIR = "checkpoints"


class CheckpointWriteError(StoreWriteError):
    """A run's checkpoint could not be saved: the storage failed, not the run (the command
    ends with exit 3 and the run is not recorded; a rerun does it again)."""


class Checkpoints:
    """One file per run key in a directory; written atomically
    (:meth:`harness.running.safe_files.Folder.replacing`), so a kill at any moment leaves the
    previous checkpoint or the new one, never half of one."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.pt"

    def save(self, key: str, state: dict[str, Any]) -> None:
        """Write ``state`` (with the random-number states) as the checkpoint of ``key`` (its
        folder, in the results folder, is not followed if it is a link; on a full disk no half
        file is left behind); :class:`CheckpointWriteError` when the storage refuses, saying
        what is kept. SIGINT and SIGTERM land once it is written, not lost in the pickling
        (:mod:`harness.running.held_signals`)."""
        with signals_held():
            content = io.BytesIO()  # serialised first: torch's writer makes EFBIG a RuntimeError
            torch.save({**state, "rng": rng_state()}, content)
            self._write(key, content)

    def _write(self, key: str, content: io.BytesIO) -> None:
        folder = Folder(self.directory.parent) / self.directory.name
        try:
            with folder.replacing(self.path(key).name) as handle:
                handle.write(content.getbuffer())
        except UnsafePathError:
            raise
        except OSError as error:
            kept = ("its checkpoint of the epoch before is kept (a rerun resumes there)"
                    if os.path.lexists(self.path(key)) else
                    "no earlier checkpoint of it exists (a rerun starts it afresh)")
            raise CheckpointWriteError(
                f"{self.path(key)}: could not save this checkpoint ({error.strerror or error}); "
                f"the run is stopped and not recorded, and {kept}. Free space (or raise the "
                f"file-size limit) and rerun the same command") from None

    def read(self, key: str, runs: Sequence[RunSpec], set_aside: bool = True
             ) -> dict[str, Any] | None:
        """The saved state as stored (random-number states included) of ``runs`` (one run, or
        the members of the ensemble ``key`` names), or None when there is no usable checkpoint
        (an unusable one — crafted, torn, lying about the runs, a FIFO or a folder — is moved
        aside to ``<key>.pt.<pid>-<time>.rejected`` unless ``set_aside`` is false: a reader
        without the results folder's lock, such as the planner, leaves it where it is)."""
        path = self.path(key)
        if not os.path.lexists(path):
            return None
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):  # a FIFO would block, a link mislead
                raise ValueError("not a regular file")
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError,
                KeyError, TypeError, AttributeError, OSError) as error:
            if set_aside:
                self.reject(key, f"{type(error).__name__}: it holds more than tensors and plain "
                                 f"data, is damaged or is no file")
            return None
        problem = checkpoint_problem(state, runs[0].epochs, len(runs) if len(runs) > 1 else None)
        if problem:
            if set_aside:
                self.reject(key, f"not what {runs[0].label}"
                                 f"{' and its ensemble' * (len(runs) > 1)} saves: {problem}")
            return None
        return state

    def reject(self, key: str, why: str) -> None:
        """Set a checkpoint aside (kept, for whoever wants to look) and say why: the run
        starts over."""
        rejected = self._set_aside(self.path(key))
        log.warning("%s: not a usable checkpoint (%s); moved to %s, the run starts over",
                    self.path(key), why, rejected.name)

    def load(self, key: str, runs: Sequence[RunSpec]) -> dict[str, Any] | None:
        """As :meth:`read`, with the random-number generators restored from the state."""
        state = self.read(key, runs)
        if state is not None:
            restore_rng(state.pop("rng"))
        return state

    def epochs(self, run: RunSpec) -> list[dict[str, Any]]:
        """The epoch records the checkpoint of a solo ``run`` holds (none without one): what
        it had finished when its process died."""
        state = self.read(run.key, [run])
        return state["epochs"] if state else []

    def discard(self, key: str) -> None:
        path = self.path(key)
        if os.path.isdir(path) and not os.path.islink(path):
            self._set_aside(path)
        else:
            path.unlink(missing_ok=True)

    def _set_aside(self, path: Path) -> Path:
        """Move an unusable entry out of the way (a name of its own: never over another)."""
        rejected = path.with_name(f"{path.name}.{os.getpid()}-{time.time_ns()}.rejected")
        os.replace(path, rejected)
        return rejected

    def sweep(self, finished: set[str]) -> None:
        """Remove what no run will read: checkpoints of finished runs (killed between storing
        the record and dropping the checkpoint) and temporary files of killed saves. Only the
        driver holding the directory's lock calls it, before any worker starts."""
        for key in finished:
            self.discard(key)
        for temporary in self.directory.glob("*.tmp"):
            temporary.unlink(missing_ok=True)


def rng_state() -> dict[str, Any]:
    """The random-number generators' states as tensors and lists (loadable with weights_only)."""
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {"torch": torch.get_rng_state(),
                             "python": [version, list(internal), gauss]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
