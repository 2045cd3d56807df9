"""Per-run checkpoints, so an interrupted run continues from its last finished epoch.

Checkpoints are read with ``torch.load(weights_only=True)``: tensors, numbers, strings, lists
and dicts only, so a crafted file in a results folder cannot execute code. A file that does not
load that way (crafted, torn, from an older harness) is moved aside with a warning and the run
starts over.
"""
from __future__ import annotations

import logging
import os
import pickle
import random
import stat
import time
import zipfile
from pathlib import Path
from typing import Any

import torch

from harness.running.safe_files import Folder

log = logging.getLogger("harness")


class Checkpoints:
    """One file per run key in a directory; written atomically
    (:meth:`harness.running.safe_files.Folder.replacing`), so a kill at any moment leaves the
    previous checkpoint or the new one, never half of one."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.pt"

    def save(self, key: str, state: dict[str, Any]) -> None:
        """Write the checkpoint of ``key`` (its folder, in the results folder, is not followed
        if it is a link; on a full disk or an interrupt no half file is left behind)."""
        folder = Folder(self.directory.parent) / self.directory.name
        with folder.replacing(self.path(key).name) as handle:
            torch.save({**state, "rng": rng_state()}, handle)

    def read(self, key: str) -> dict[str, Any] | None:
        """The saved state as stored (random-number states included), or None when there is
        no usable checkpoint (an unusable one — crafted, torn, a FIFO or a folder — is moved aside
        to ``<key>.pt.<pid>-<time>.rejected``)."""
        path = self.path(key)
        if not os.path.lexists(path):
            return None
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):  # a FIFO would block, a link mislead
                raise ValueError("not a regular file")
            state = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict) or not isinstance(state.get("epochs"), list):
                raise ValueError("not a harness checkpoint")
            return state
        except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError,
                KeyError, TypeError, AttributeError, OSError) as error:
            self.reject(key, f"{type(error).__name__}: it holds more than tensors and plain "
                             f"data, is damaged or is no file")
            return None

    def reject(self, key: str, why: str) -> None:
        """Set a checkpoint aside (kept, for whoever wants to look) and say why: the run
        starts over."""
        rejected = self._set_aside(self.path(key))
        log.warning("%s: not a usable checkpoint (%s); moved to %s, the run starts over",
                    self.path(key), why, rejected.name)

    def load(self, key: str) -> dict[str, Any] | None:
        """The saved state (its random-number generators already restored), or None."""
        state = self.read(key)
        if state is not None:
            restore_rng(state.pop("rng"))
        return state

    def epochs(self, key: str) -> list[dict[str, Any]]:
        """The epoch records a checkpoint holds (none without one): what a run whose process
        died had finished."""
        state = self.read(key)
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
