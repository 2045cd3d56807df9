"""Reading the sequence tasks' data files from a data root.

The data root is the run's (``--data-root``, else the suite's ``data_root``, else
``$HARNESS_DATA_ROOT``), else :data:`harness.contract.DEFAULT_DATA_ROOT`. The layout under
it (the same as the project's shared data folder):

    plane_vibration/pv.csv        F-16 ground vibration test: a header, then one row per stamp,
                                  Force, Voltage, Acceleration1-3, Fs (first row only), each
                                  row ending with a comma
    walker/rollout_NNN.npy        Walker2D rollouts, float64 [T, 17] each
    silverbox/sb.csv              Silverbox: a header, then V1 (input), V2 (output) per row
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from harness import DataNotFound, data_root_or_default

HOW_TO_GET = {
    "plane_vibration": "pv.csv is data/pv.csv of the HBNODE authors' repository "
                       "(github.com/hedixia/HeavyBallNODE)",
    "walker": "the rollout_NNN.npy files are the contents of walker.zip of the ODE-LSTM data "
              "(Lechner & Hasani 2020, github.com/mlech26l/ode-lstms), unzipped",
    "silverbox": "sb.csv is data/sb.csv of the HBNODE authors' repository "
                 "(github.com/hedixia/HeavyBallNODE)",
}


def locate(data_root: str | None, folder: str, name: str) -> Path:
    """``<data root>/folder/name``, or a :class:`DataNotFound` saying where it was expected and
    how to get it."""
    path = data_root_or_default(data_root) / folder / name
    if not path.exists():
        raise DataNotFound(f"{path} not found; {HOW_TO_GET[folder]}. Put it there, or point the "
                           f"run elsewhere with --data-root, the suite's data_root or "
                           f"HARNESS_DATA_ROOT (a root holding {folder}/)")
    return path


def read_plane_vibration(path: Path) -> Tensor:
    """(stamps, 5): Force, Voltage, Acceleration1-3 (the Fs column and the empty one after the
    trailing comma are not read)."""
    return torch.from_numpy(np.loadtxt(path, delimiter=",", skiprows=1, usecols=range(5),
                                       dtype=np.float64, ndmin=2)).float()


def read_silverbox(path: Path) -> Tensor:
    """(samples, 2): V1, V2."""
    return torch.from_numpy(np.loadtxt(path, delimiter=",", skiprows=1, usecols=(0, 1),
                                       dtype=np.float64, ndmin=2)).float()


def walker_files(data_root: str | None) -> list[Path]:
    """The rollout files, sorted by name."""
    folder = locate(data_root, "walker", "")
    files = sorted(folder.glob("rollout_*.npy"))
    if not files:
        raise DataNotFound(f"no rollout_NNN.npy files in {folder}; {HOW_TO_GET['walker']}")
    return files


def read_rollout(path: Path) -> Tensor:
    """(T, 17) float32 from a float64 [T, 17] array."""
    array = np.load(path)
    if array.ndim != 2 or array.shape[1] != 17:
        raise ValueError(f"{path}: expected a [T, 17] array, found shape {array.shape}")
    return torch.from_numpy(array.astype(np.float32))
