"""Image data sets read through torchvision's dataset classes, their files verified by checksum.

Files live under the data root (``--data-root``, else the suite's ``data_root``, else
``$HARNESS_DATA_ROOT``, else :data:`harness.DEFAULT_DATA_ROOT`) in torchvision's layout:
``<root>/MNIST/raw/*.gz``, ``<root>/FashionMNIST/raw/*.gz``, ``<root>/cifar-10-batches-py/``.
Nothing is downloaded unless asked for; then torchvision's own download puts the files there.

Checksums are torchvision's: the md5 of each ``.gz`` file of the MNIST-style sets, the md5 of
each CIFAR10 batch file. An MNIST-style ``.gz`` file that is a re-compressed copy (Debian's
Fashion-MNIST package stores the files without the gzip header's file name, so their md5
differs) is accepted when its decompressed bytes match the published md5 of the decompressed
file (:data:`DECOMPRESSED_MD5`). The ``.gz`` files are decompressed into a temporary folder for
torchvision's class to read, so data folders are never written to and may be read-only.
"""
from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Callable

import numpy as np
import torch
from torch import Tensor
from torchvision.datasets import CIFAR10, MNIST
from torchvision.datasets.utils import check_integrity

from harness import DEFAULT_DATA_ROOT, DataNotFound

#: md5 of the decompressed IDX files, by torchvision class name: the same bytes whichever way
#: the .gz around them was made. MNIST's three files here match the decompressed torchvision-
#: verified copies in shared/data; Fashion-MNIST's match Debian's dataset-fashion-mnist.
DECOMPRESSED_MD5: dict[str, dict[str, str]] = {
    "MNIST": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "FashionMNIST": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}

_ROOT_HELP = ("The data root is --data-root, else the suite's data_root, else $HARNESS_DATA_ROOT, "
              f"else {DEFAULT_DATA_ROOT}.")


@dataclass
class Split:
    """One split of an image data set: uint8 images (N, C, H, W) and int64 labels (N,)."""

    images: Tensor
    labels: Tensor


def load_idx(dataset: type[MNIST], root: Path, download: bool, label: str,
             also_in: tuple[Path, ...] = (), how_to_get: str = "") -> tuple[Split, Split]:
    """(train, test) of an MNIST-style set, from ``root/<Class>/raw`` or else the first folder
    of ``also_in`` that holds all four ``.gz`` files."""
    raw = root / dataset.__name__ / "raw"
    names = [name for name, _ in dataset.resources]
    folder = _first_complete(names, (raw, *also_in))
    if folder is None and download:
        _download(lambda: dataset(root, train=True, download=True), label, root)
        folder = _first_complete(names, (raw,))
    if folder is None:
        ways = [f"download them from {dataset.mirrors[0]} into that folder",
                *([how_to_get] if how_to_get else [])]
        raise DataNotFound(_not_found(label, raw, names, also_in, ways))
    with TemporaryDirectory() as staging:
        staged = Path(staging) / dataset.__name__ / "raw"
        staged.mkdir(parents=True)
        for name, md5 in dataset.resources:
            content = _verified_idx(folder / name, md5, DECOMPRESSED_MD5.get(dataset.__name__, {}),
                                    label)
            (staged / name.removesuffix(".gz")).write_bytes(content)
        train, test = (dataset(staging, train=train) for train in (True, False))
        return (Split(train.data.unsqueeze(1), train.targets),
                Split(test.data.unsqueeze(1), test.targets))


def load_cifar(dataset: type[CIFAR10], root: Path, download: bool,
               label: str) -> tuple[Split, Split]:
    """(train, test) of CIFAR10 (or a class laid out like it) from ``root/<base_folder>``."""
    folder = root / dataset.base_folder
    expected = [*dataset.train_list, *dataset.test_list,
                [dataset.meta["filename"], dataset.meta["md5"]]]
    names = [name for name, _ in expected]
    if _first_complete(names, (folder,)) is None and download:
        _download(lambda: dataset(root, train=True, download=True), label, root)
    if _first_complete(names, (folder,)) is None:
        raise DataNotFound(_not_found(label, folder, names, (),
                                      [f"download {dataset.url} and extract it into {root}"]))
    corrupt = [f"  {name}: md5 {_md5(folder / name)}, torchvision expects {md5}"
               for name, md5 in expected if not check_integrity(folder / name, md5)]
    if corrupt:
        raise DataNotFound("\n".join([
            f"{label}: files in {folder} fail torchvision's checksum (corrupt, or not {label}'s):",
            *corrupt, f"Replace them with the contents of {dataset.url}."]))
    train, test = (dataset(root, train=train) for train in (True, False))
    return (Split(_channels_first(train.data), torch.tensor(train.targets)),
            Split(_channels_first(test.data), torch.tensor(test.targets)))


def missing_idx(dataset: type[MNIST], root: Path, also_in: tuple[Path, ...] = ()) -> list[str]:
    """The ``.gz`` files of an MNIST-style set missing from ``root/<Class>/raw`` (none when
    that folder, or one of ``also_in``, holds all four); existence only, no checksum."""
    raw = root / dataset.__name__ / "raw"
    names = [name for name, _ in dataset.resources]
    if _first_complete(names, (raw, *also_in)) is not None:
        return []
    return [str(raw / name) for name in names if not (raw / name).is_file()]


def missing_cifar(dataset: type[CIFAR10], root: Path) -> list[str]:
    """The batch files of CIFAR10 (or a set laid out like it) missing from
    ``root/<base_folder>``; existence only, no checksum."""
    folder = root / dataset.base_folder
    names = [name for name, _ in (*dataset.train_list, *dataset.test_list)]
    names.append(dataset.meta["filename"])
    return [str(folder / name) for name in names if not (folder / name).is_file()]


def _not_found(label: str, folder: Path, names: list[str], also_in: tuple[Path, ...],
               ways: list[str]) -> str:
    """Which files were expected where, which are missing, and how to get them."""
    return "\n".join([
        f"{label} not found. Expected torchvision's files in {folder}:",
        *(f"  {name}{'' if (folder / name).is_file() else '  (missing)'}" for name in names),
        *(f"or all of them in {path}" for path in also_in),
        _ROOT_HELP,
        "To get them: set task_options: {download: true} to let torchvision download them "
        f"(needs internet), or {', or '.join(ways)}.",
    ])


def _first_complete(names: list[str], folders: tuple[Path, ...]) -> Path | None:
    return next((folder for folder in folders if all((folder / n).is_file() for n in names)), None)


def _verified_idx(path: Path, gz_md5: str, decompressed_md5: dict[str, str], label: str) -> bytes:
    """The decompressed bytes of ``path``, once the file passes torchvision's checksum of the
    .gz, or its decompressed bytes pass the decompressed file's."""
    name = path.name.removesuffix(".gz")
    packed = path.read_bytes()
    if hashlib.md5(packed).hexdigest() == gz_md5:
        return gzip.decompress(packed)
    try:
        content = gzip.decompress(packed)
    except (OSError, EOFError):  # not gzip at all, or cut short
        content = b""
    if content and hashlib.md5(content).hexdigest() == decompressed_md5.get(name):
        return content
    raise DataNotFound(f"{label}: {path} fails its checksum (md5 {_md5(path)}; torchvision expects "
                       f"{gz_md5} for the .gz, or {decompressed_md5.get(name, 'none known')} for "
                       f"its decompressed bytes): the file is corrupt or not {label}'s. Delete it "
                       f"and get it again.")


def _download(fetch: Callable[[], object], label: str, root: Path) -> None:
    """Run torchvision's download; its failure becomes one clear message, without a traceback
    from inside torchvision."""
    try:
        fetch()
    except (RuntimeError, OSError) as error:
        raise DataNotFound(f"{label}: torchvision's download into {root} failed: {error}") from None


def _channels_first(images: np.ndarray) -> Tensor:
    """CIFAR's (N, H, W, C) uint8 array as an (N, C, H, W) tensor."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()
