"""Image classification (HBNODE paper §5.2, appendix E.3): MNIST, CIFAR10 and Fashion-MNIST.

An image x (c channels) is the first c channels of the state; NODE and ANODE pad it with zero
channels to n, and SONODE, HBNODE and GHBNODE get the other P·n − c channels from the
initial-velocity network (conv_{h,1} → LReLU(0.3) → conv_{h,3} → LReLU → conv_{2n−c,1}; in
general as many output channels as the family's ``initial_state`` takes from it).
f reads f_input_parts·n channels: tpad → conv_{h,1} → ReLU → tpad → conv_{h,3} → ReLU → tpad →
conv_{n,1}, where tpad appends a channel filled with t. The head is flatten → fc_10 on h(T);
the loss is cross-entropy. Pixels are scaled to [0, 1], as torchvision's ToTensor does (the
paper says nothing more; the authors' code does the same).

Fashion-MNIST is not in the paper: it has MNIST's shape, and so MNIST's networks and widths.
"""
from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Any, ClassVar, Iterator

import torch
from torch import Tensor, nn
from torchvision import datasets

from harness import BuildContext, Task, TaskData, WidthNames, data_root_or_default, hookimpl
from harness.toolkit import RowwiseTime, SolveThenRead, TensorBatches
from harness_plugins.tasks.image_data import Split, load_cifar, load_idx, missing_cifar, missing_idx

#: Where Debian's dataset-fashion-mnist package puts the four .gz files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
CLASSES = 10


class TimeConvField(RowwiseTime, nn.Module):
    """f(t, z): three convolutions (kernel 1, 3, 1), each reading a channel filled with t (row
    i's with t's row i when t has one value per row)."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(in_channels + 1, hidden, 1),
                                    nn.Conv2d(hidden + 1, hidden, 3, padding=1),
                                    nn.Conv2d(hidden + 1, out_channels, 1)])

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        time = t.to(z.dtype).expand(z.shape[0], 1, *z.shape[2:])
        for i, conv in enumerate(self.convs):
            if i:
                z = torch.relu(z)
            z = conv(torch.cat([z, time], dim=1))
        return z


def velocity_net(in_channels: int, hidden: int, out_channels: int) -> nn.Sequential:
    """The initial-velocity network: conv_{h,1} → LReLU(0.3) → conv_{h,3} → LReLU → conv_{out,1}."""
    return nn.Sequential(nn.Conv2d(in_channels, hidden, 1), nn.LeakyReLU(0.3),
                         nn.Conv2d(hidden, hidden, 3, padding=1), nn.LeakyReLU(0.3),
                         nn.Conv2d(hidden, out_channels, 1))


class FirstBatches(TensorBatches):
    """Batches that end the epoch after ``limit`` of them: shorter epochs for quick runs."""

    def __init__(self, x: Tensor, y: Tensor, batch_size: int | None, limit: int,
                 shuffle: bool = False, seed: int = 0) -> None:
        super().__init__(x, y, batch_size, shuffle=shuffle, seed=seed)
        self.limit = limit

    def __len__(self) -> int:
        return min(super().__len__(), self.limit)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return islice(super().__iter__(), self.limit)


class ImageTask(Task):
    """The paper's image classifier on a torchvision data set; subclasses name the data."""

    #: Channels and side of the images.
    channels: ClassVar[int]
    size: ClassVar[int]
    width_names = WidthNames(required={"n", "h"})
    #: Table 1 (batch 64, lr 0.001, Adam) and Figs 1/5 (dopri5, tol 1e-5). The paper gives no
    #: epoch count; the authors' released MNIST and CIFAR10 training logs run 40 epochs.
    schedule = {"epochs": 40, "batch_size": 64, "lr": 1e-3, "optimizer": "adam",
                "solver": {"method": "dopri5", "rtol": 1e-5, "atol": 1e-5}}
    options = {
        "download": False,        # let torchvision download missing files into the data root
        "train_size": None,       # a random subset of the training images (None: all)
        "test_size": None,        # a random subset of the test images (None: all)
        "batches_per_epoch": None,  # end each epoch after this many batches (None: all)
        "subset_seed": 0,         # which subsets; the same for every run and model
    }
    tiny = {"batch_size": 8, "task_options": {"train_size": 8, "test_size": 8}}
    metric = "accuracy"

    def load(self, root: Path, download: bool) -> tuple[Split, Split]:
        """(train, test) as uint8 images and labels."""
        raise NotImplementedError

    def missing(self, root: Path) -> list[str]:
        """The files :meth:`load` reads that are missing under ``root``."""
        raise NotImplementedError

    def data(self, options: dict[str, Any], seed: int, data_root: str | None,
             device: torch.device, batch_size: int | None) -> TaskData:
        sizes = {key: _count_or_none(options, key)
                 for key in ("train_size", "test_size", "batches_per_epoch")}
        train, test = self.load(data_root_or_default(data_root), bool(options["download"]))
        x, y = _subset(train, sizes["train_size"], options["subset_seed"], "train_size", device)
        x_test, y_test = _subset(test, sizes["test_size"], options["subset_seed"], "test_size",
                                 device)
        limit = sizes["batches_per_epoch"]
        batches = (TensorBatches(x, y, batch_size, shuffle=True, seed=seed) if limit is None else
                   FirstBatches(x, y, batch_size, limit, shuffle=True, seed=seed))
        return TaskData(train=batches, test=TensorBatches(x_test, y_test, batch_size))

    def build_model(self, ctx: BuildContext) -> nn.Module:
        n, h, c = ctx.widths["n"], ctx.widths["h"], self.channels
        f = TimeConvField(ctx.family.f_input_parts * n, h, n)
        velocity = velocity_net(c, h, ctx.velocity_channels(n, c)) if ctx.uses_velocity_net else None
        head = nn.Sequential(nn.Flatten(), nn.Linear(n * self.size ** 2, CLASSES))
        return SolveThenRead(ctx.ode(f, n), head, velocity)

    def loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        return nn.functional.cross_entropy(prediction, target)

    def metrics(self, prediction: Tensor, target: Tensor) -> dict[str, float]:
        return {"accuracy": (prediction.argmax(dim=1) == target).float().mean().item()}

    def check_data(self, options: dict[str, Any], data_root: str | None) -> list[str]:
        """Missing files, unless torchvision is to download them (``download: true``)."""
        return [] if options.get("download") else self.missing(data_root_or_default(data_root))


class MNISTTask(ImageTask):
    name = "mnist"
    channels, size = 1, 28
    # n = c + p with p = 0, 5, 4, 4, 5 (paper, footnote 5); h from appendix E.3.
    widths = {"node": {"n": 1, "h": 92}, "anode": {"n": 6, "h": 64}, "sonode": {"n": 5, "h": 50},
              "hbnode": {"n": 5, "h": 50}, "ghbnode": {"n": 6, "h": 45}}
    paper_params = {"node": 85315, "anode": 85462, "sonode": 86179, "hbnode": 85931,
                    "ghbnode": 85235}

    def load(self, root: Path, download: bool) -> tuple[Split, Split]:
        return load_idx(datasets.MNIST, root, download, "MNIST")

    def missing(self, root: Path) -> list[str]:
        return missing_idx(datasets.MNIST, root)


class FashionMNISTTask(MNISTTask):
    name = "fashion_mnist"
    paper_params = {}

    def load(self, root: Path, download: bool) -> tuple[Split, Split]:
        return load_idx(datasets.FashionMNIST, root, download, "Fashion-MNIST",
                        also_in=(DEBIAN_FASHION_MNIST,),
                        how_to_get="apt-get install dataset-fashion-mnist (Debian's package)")

    def missing(self, root: Path) -> list[str]:
        return missing_idx(datasets.FashionMNIST, root, also_in=(DEBIAN_FASHION_MNIST,))


class CIFAR10Task(ImageTask):
    name = "cifar10"
    channels, size = 3, 32
    # n = c + p with p = 0, 10, 9, 9, 9 (paper, footnote 5); h from appendix E.3.
    widths = {"node": {"n": 3, "h": 125}, "anode": {"n": 13, "h": 64},
              "sonode": {"n": 12, "h": 50}, "hbnode": {"n": 12, "h": 51},
              "ghbnode": {"n": 12, "h": 51}}
    paper_params = {"node": 173611, "anode": 172452, "sonode": 171635, "hbnode": 172916,
                    "ghbnode": 172916}

    def load(self, root: Path, download: bool) -> tuple[Split, Split]:
        return load_cifar(datasets.CIFAR10, root, download, "CIFAR10")

    def missing(self, root: Path) -> list[str]:
        return missing_cifar(datasets.CIFAR10, root)


def _count_or_none(options: dict[str, Any], key: str) -> int | None:
    value = options[key]
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        return value
    raise ValueError(f"task option {key} must be an integer > 0 or null, not {value!r}")


def _subset(split: Split, size: int | None, seed: int, key: str,
            device: torch.device) -> tuple[Tensor, Tensor]:
    """``size`` images drawn at random with ``seed`` (all of them for None), as floats in
    [0, 1] on the device."""
    images, labels = split.images, split.labels
    if size is not None:
        if size > len(labels):
            raise ValueError(f"task option {key} is {size}, but the split has {len(labels)} images")
        generator = torch.Generator().manual_seed(seed)
        index = torch.randperm(len(labels), generator=generator)[:size]
        images, labels = images[index], labels[index]
    return images.to(device, torch.get_default_dtype()).div_(255), labels.to(device)


@hookimpl
def harness_tasks() -> list[type[Task]]:
    return [MNISTTask, CIFAR10Task, FashionMNISTTask]
