"""Small data files in the real formats of pv.csv, rollout_NNN.npy and sb.csv, for tests, and
the tasks' trust in them (the tasks verify every file against the published SHA-256)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from harness_plugins.tasks import sequence_files

#: Where CI and the development machines keep the real data, beside the checkout.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def write_plane_vibration(root: Path, stamps: int, seed: int = 0) -> np.ndarray:
    """root/plane_vibration/pv.csv as the real file has it: a quoted header, Fs on the first
    row only, a trailing comma on every row, a blank last line. Returns the 5 attributes."""
    values = np.random.default_rng(seed).normal(size=(stamps, 5)).round(6)
    lines = ['"Force","Voltage","Acceleration1","Acceleration2","Acceleration3","Fs",']
    for i, row in enumerate(values):
        lines.append(",".join(f"{v:.10g}" for v in row) + (",400," if i == 0 else ",,"))
    path = root / "plane_vibration" / "pv.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n\n")
    return values


def write_walker(root: Path, lengths: list[int], seed: int = 0,
                 labelled: bool = False) -> list[np.ndarray]:
    """root/walker/rollout_NNN.npy, float64 [T, 17] each: random, or (``labelled``) with every
    value of rollout r at stamp i equal to 1000·r + i."""
    rng = np.random.default_rng(seed)
    folder = root / "walker"
    folder.mkdir(parents=True, exist_ok=True)
    rollouts = [np.repeat(1000.0 * r + np.arange(length)[:, None], 17, axis=1) if labelled
                else rng.normal(size=(length, 17)) for r, length in enumerate(lengths)]
    for i, rollout in enumerate(rollouts):
        np.save(folder / f"rollout_{i:03d}.npy", rollout)
    return rollouts


def write_silverbox(root: Path, samples: int, seed: int = 0) -> np.ndarray:
    """root/silverbox/sb.csv: a quoted header, V1,V2 with a trailing comma, no final newline."""
    values = np.random.default_rng(seed).normal(scale=0.01, size=(samples, 2)).round(7)
    lines = ['"V1","V2",'] + [f"{a:.10g},{b:.10g}," for a, b in values]
    path = root / "silverbox" / "sb.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return values


def trust_written(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """Give the tasks the SHA-256 of the files written under ``root`` (pv.csv, sb.csv, the
    rollouts' listing), for the length of the test; files not written keep the published."""
    digests = dict(sequence_files.SHA256)
    for key in ("plane_vibration/pv.csv", "silverbox/sb.csv"):
        if (root / key).is_file():
            digests[key] = sha256((root / key).read_bytes())
    rollouts = sorted((root / "walker").glob("rollout_*.npy"))
    if rollouts:
        listing = "".join(f"{sha256(path.read_bytes())}  {path.name}\n" for path in rollouts)
        digests[sequence_files.WALKER_LISTING] = sha256(listing.encode())
    monkeypatch.setattr(sequence_files, "SHA256", digests)


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()
