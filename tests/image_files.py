"""Small image data sets written in the real on-disk formats, for torchvision's loaders to read.

MNIST-style sets: IDX files (big-endian header: two zero bytes, type 0x08 = unsigned byte, the
number of dimensions, then each dimension as a 32-bit integer; then the bytes), gzip-compressed,
in ``<root>/<Class>/raw/``. CIFAR10: pickled dicts in ``<root>/cifar-10-batches-py/``, each
batch with ``data`` (N × 3072 bytes: the red, green and blue 32×32 planes, row by row) and
``labels``, and ``batches.meta`` with ``label_names``.
"""
from __future__ import annotations

import gzip
import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np

IDX_NAMES = {("train", "images"): "train-images-idx3-ubyte",
             ("train", "labels"): "train-labels-idx1-ubyte",
             ("test", "images"): "t10k-images-idx3-ubyte",
             ("test", "labels"): "t10k-labels-idx1-ubyte"}
CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def idx_bytes(array: np.ndarray) -> bytes:
    """``array`` (unsigned bytes) in the IDX format."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    dimensions = struct.pack(f">{array.ndim}I", *array.shape)
    return header + dimensions + array.astype(np.uint8).tobytes()


def write_idx(raw: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    """One split's two .gz files into ``raw``."""
    raw.mkdir(parents=True, exist_ok=True)
    for kind, array in (("images", images), ("labels", labels)):
        content = gzip.compress(idx_bytes(array), mtime=0)
        (raw / f"{IDX_NAMES[split, kind]}.gz").write_bytes(content)


def random_idx_split(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return (rng.integers(0, 256, (count, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, count, dtype=np.uint8))


def write_cifar(root: Path, per_batch: int, test_count: int,
                rng: np.random.Generator) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Five training batches of ``per_batch`` images, a test batch and the meta file under
    ``root/cifar-10-batches-py``; returns each batch's (data, labels)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for name, count in [*((name, per_batch) for name in CIFAR_TRAIN), ("test_batch", test_count)]:
        data = rng.integers(0, 256, (count, 3 * 32 * 32), dtype=np.uint8)
        labels = rng.integers(0, 10, count).tolist()
        batch = {"batch_label": name, "data": data, "labels": labels}
        (folder / name).write_bytes(pickle.dumps(batch))
        batches[name] = (data, labels)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
             "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names, "num_vis": 3072}))
    return batches
