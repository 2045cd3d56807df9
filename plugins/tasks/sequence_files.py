"""Reading the sequence tasks' data files from a data root.

The data root is the run's (``--data-root``, else the suite's ``data_root``, else
``$HARNESS_DATA_ROOT``), else :data:`harness.DEFAULT_DATA_ROOT`. The layout under
it (the README's "Data" says where each file comes from):

    plane_vibration/pv.csv        F-16 ground vibration test: a header, then one row per stamp,
                                  Force, Voltage, Acceleration1-3, Fs (first row only), each
                                  row ending with a comma
    walker/rollout_NNN.npy        Walker2D rollouts, float64 [T, 17] each
    silverbox/sb.csv              Silverbox: a header, then V1 (input), V2 (output) per row

Every file is verified against the SHA-256 of the published file (:data:`SHA256`) before it
is read, so a file cut short at a row boundary, which would still parse, is not trained on.
Tests, which cannot write files with the published digests, set :data:`SHA256` to the digests
of the files they wrote (as the image tasks' tests do with torchvision's md5s). A digest is
computed once per process per file (and again if the file changes); so is a CSV file's parse.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from harness import DataNotFound, data_root_or_default

HOW_TO_GET = {
    "plane_vibration": "pv.csv is data/pv.csv of the HBNODE authors' repository: "
                       "https://raw.githubusercontent.com/hedixia/HeavyBallNODE/master/data/pv.csv",
    "walker": "the rollout_NNN.npy files are the contents of walker.zip of the ODE-LSTM data "
              "(Lechner & Hasani 2020), https://pub.ist.ac.at/~mlechner/datasets/walker.zip, "
              "unzipped into the data root (it holds walker/)",
    "silverbox": "sb.csv is data/sb.csv of the HBNODE authors' repository: "
                 "https://raw.githubusercontent.com/hedixia/HeavyBallNODE/master/data/sb.csv",
}


#: The key of the walker rollouts' digest in :data:`SHA256`.
WALKER_LISTING = "walker/rollout_*.npy"

#: SHA-256 of the published files, by path under the data root. The 400 walker rollouts have
#: one digest: that of the listing ``sha256sum rollout_*.npy`` prints in walker/ (a
#: ``<digest>  <name>`` line per file, in name order): ``sha256sum rollout_*.npy | sha256sum``.
SHA256 = {
    "plane_vibration/pv.csv": "b72a9d063e392570bb20c26f4763232e30262e5914d946e475e67df40880db6d",
    "silverbox/sb.csv": "e7076735427b0b9bbc18a2a43b78022219a76623b15b494be559dc58b0224279",
    WALKER_LISTING: "acc45258eacbde2eb0ef1ce325264b5182045d99a860f6fe1cd46277df6912ef",
}


def locate(data_root: str | None, folder: str, name: str) -> Path:
    """``<data root>/folder/name`` once it matches the published file's SHA-256, or a
    :class:`DataNotFound` saying where it was expected, what is wrong and how to get it."""
    path = _existing(data_root_or_default(data_root) / folder / name, folder)
    found, expected = file_sha256(path), SHA256[f"{folder}/{name}"]
    if found != expected:
        raise DataNotFound(f"{path}: SHA-256 {found}, expected {expected} (the published "
                           f"{folder}/{name}): the file is cut short, changed or another file. "
                           f"Replace it with a fresh copy; {HOW_TO_GET[folder]}")
    return path


def missing_file(data_root: str | None, folder: str, name: str) -> list[str]:
    """``[<data root>/folder/name]`` when that file is missing, else []."""
    path = data_root_or_default(data_root) / folder / name
    return [] if path.is_file() else [str(path)]


def missing_walker(data_root: str | None) -> list[str]:
    """``[<data root>/walker/rollout_*.npy]`` when the folder holds no rollout file, else []
    (whether all 400 are there is checked by their digest when a run reads them)."""
    folder = data_root_or_default(data_root) / "walker"
    return [] if any(folder.glob("rollout_*.npy")) else [str(folder / "rollout_*.npy")]


def _existing(path: Path, folder: str) -> Path:
    """``path``, or a :class:`DataNotFound` saying it is missing, how to get it and where else
    the run may look."""
    if not path.exists():
        raise DataNotFound(f"{path} not found; {HOW_TO_GET[folder]}. Put it there, or point the "
                           f"run elsewhere with --data-root, the suite's data_root or "
                           f"HARNESS_DATA_ROOT (a root holding {folder}/)")
    return path


def read_plane_vibration(path: Path) -> Tensor:
    """(stamps, 5): Force, Voltage, Acceleration1-3 (the Fs column and the empty one after the
    trailing comma are not read)."""
    return _read_csv(path, range(5))


def read_silverbox(path: Path) -> Tensor:
    """(samples, 2): V1, V2."""
    return _read_csv(path, (0, 1))


def _read_csv(path: Path, columns: range | tuple[int, ...]) -> Tensor:
    """The columns of a CSV file after its header line, in torch's default dtype (float32
    unless a test sets float64); a value that is no number or a row short of columns raises a
    ValueError naming the file. The file is parsed once per process while it is unchanged (an
    ensemble's members each read it); every call gets a tensor of its own."""
    try:
        array = _parsed_csv(*as_it_is(path), tuple(columns))
    except ValueError as bad:
        raise ValueError(f"{path}: {bad}") from None
    return torch.tensor(array, dtype=torch.get_default_dtype())


@lru_cache(maxsize=4)
def _parsed_csv(path: Path, size: int, mtime_ns: int, columns: tuple[int, ...]) -> np.ndarray:
    """The float64 columns of ``path`` as it was with this size and modification time (read
    only: it is shared)."""
    array = np.loadtxt(path, delimiter=",", skiprows=1, usecols=columns, dtype=np.float64,
                       ndmin=2)
    array.flags.writeable = False
    return array


def walker_files(data_root: str | None) -> list[Path]:
    """The rollout files, sorted by name, once their listing matches the published one."""
    folder = _existing(data_root_or_default(data_root) / "walker", "walker")
    files = sorted(folder.glob("rollout_*.npy"))
    if not files:
        raise DataNotFound(f"no rollout_NNN.npy files in {folder}; {HOW_TO_GET['walker']}")
    listing = "".join(f"{file_sha256(path)}  {path.name}\n" for path in files)
    found, expected = hashlib.sha256(listing.encode()).hexdigest(), SHA256[WALKER_LISTING]
    if found != expected:
        raise DataNotFound(
            f"{folder}: the SHA-256 of the listing of its {len(files)} rollout files "
            f"(`sha256sum rollout_*.npy | sha256sum` there) is {found}, expected {expected} "
            f"(the published 400 files): a file is missing, extra, cut short or changed. Replace "
            f"the folder's rollout files with fresh copies; {HOW_TO_GET['walker']}")
    return files


def read_rollout(path: Path) -> Tensor:
    """(T, 17) in torch's default dtype from a float64 [T, 17] array."""
    try:
        array = np.load(path)
    except (ValueError, EOFError) as bad:
        raise ValueError(f"{path}: not a readable .npy array: {bad}") from None
    if array.ndim != 2 or array.shape[1] != 17:
        raise ValueError(f"{path}: expected a [T, 17] array, found shape {array.shape}")
    return torch.from_numpy(array).to(torch.get_default_dtype())


def file_sha256(path: Path) -> str:
    """The file's SHA-256 (hex), computed once per process while the file is unchanged."""
    return _sha256(*as_it_is(path))


def as_it_is(path: Path) -> tuple[Path, int, int]:
    """The file's resolved path, size and modification time: what a result read from it once
    per process is kept under (a changed file is read again)."""
    stat = path.stat()
    return path.resolve(), stat.st_size, stat.st_mtime_ns


@lru_cache(maxsize=None)
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    """The digest of ``path`` as it was with this size and modification time."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
