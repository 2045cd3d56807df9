"""Per-run checkpoints, so an interrupted run continues from its last finished epoch."""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import torch


class Checkpoints:
    """One file per run key in a directory; written atomically (temporary file, then rename),
    so a kill at any moment leaves the previous checkpoint or the new one, never half of one."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.pt"

    def save(self, key: str, state: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        temporary = self.path(key).with_suffix(".tmp")
        torch.save({**state, "rng": rng_state()}, temporary)
        os.replace(temporary, self.path(key))

    def load(self, key: str) -> dict[str, Any] | None:
        """The saved state (its random-number generators already restored), or None."""
        path = self.path(key)
        if not path.exists():
            return None
        state = torch.load(path, map_location="cpu", weights_only=False)
        restore_rng(state.pop("rng"))
        return state

    def discard(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
