"""What the ODE-RNN sequence tasks share: data with a validation split (evaluated by the runner
in every evaluated epoch, as ``val_<metric>``), the loss and metrics on packed targets
(:mod:`harness.toolkit.sequences`), and the adjoint-decay curve measured on chosen epochs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from harness import Task, TaskData
from harness.toolkit import (adjoint_norms, decay_summary, sequence_loss, sequence_metrics,
    target_values, TensorBatches, Trajectory, unpack_inputs)

#: Options every sequence task has.
SEQUENCE_OPTIONS: dict[str, Any] = {
    "drop": 0.1,             # share of stamps removed at random
    "data_seed": None,       # seed of the dropped stamps (and of subsampling); None: the run's
    "train_windows": 0,      # use a random subset of this many training windows (0: all)
    "eval_windows": 0,       # … and of validation and test windows each (0: all)
    "adjoint_epochs": [],    # epochs after which to record the adjoint-decay curve
    "adjoint_windows": 64,   # how many training windows (the first, fixed) the probe uses
    "shuffle": True,         # a new order of training windows each epoch (False: in order)
}


@dataclass
class SequenceData(TaskData):
    """Train, test and validation batches, plus the adjoint probe's fixed batch."""

    probe: tuple[Tensor, Tensor] | None = None


class SequenceModel(nn.Module):
    """A model that can also hand back its trajectory (for the adjoint probe)."""

    def run(self, x: Tensor) -> tuple[Tensor, Trajectory]:
        """The prediction (row for row with the packed target) and the trajectory; the row of
        index T − 1 (T observations) must be the prediction made from the last state."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        return self.run(x)[0]


def subsample(x: Tensor, y: Tensor, count: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """A random subset of ``count`` windows in their original order (all for 0 or too few)."""
    if not count or count >= len(x):
        return x, y
    index = torch.randperm(len(x), generator=generator)[:count].sort().values
    return x[index], y[index]


def sequence_data(splits: list[tuple[Tensor, Tensor]], options: dict[str, Any], data_seed: int,
                  device: torch.device, batch_size: int | None) -> SequenceData:
    """Batches of the (train, validation, test) windows, subsampled as the options say, and
    the probe's batch: the first ``adjoint_windows`` training windows."""
    epochs = options["adjoint_epochs"]
    if not isinstance(epochs, list) or not all(isinstance(e, int) for e in epochs):
        raise ValueError(f"task option adjoint_epochs must be a list of epoch numbers, "
                         f"not {epochs!r}")
    generator = torch.Generator().manual_seed(data_seed)
    train, val, test = ([t.to(device) for t in subsample(*split, options[key], generator)]
                        for split, key in zip(splits, ("train_windows", "eval_windows",
                                                       "eval_windows")))
    probe = tuple(t[:options["adjoint_windows"]].to(device) for t in splits[0])
    return SequenceData(train=TensorBatches(*train, batch_size, shuffle=options["shuffle"],
                                                     seed=data_seed),
                        test=TensorBatches(*test, batch_size),
                        validation=TensorBatches(*val, batch_size), probe=probe)


class SequenceTask(Task):
    """A task whose batches are packed sequences and whose model is a :class:`SequenceModel`."""

    higher_is_better = False

    def loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        return sequence_loss(prediction, target)

    def metrics(self, prediction: Tensor, target: Tensor) -> dict[str, float]:
        return sequence_metrics(prediction, target)

    def measure(self, model: nn.Module, data: TaskData, epoch: int,
                options: dict[str, Any]) -> dict[str, Any]:
        assert isinstance(data, SequenceData) and isinstance(model, SequenceModel)
        if epoch in options["adjoint_epochs"] and data.probe is not None:
            return adjoint_decay(model, *data.probe)
        return {}


def adjoint_decay(model: SequenceModel, x: Tensor, y: Tensor) -> dict[str, Any]:
    """The adjoint-decay curve of the loss at the last stamp, over the post-update states,
    with the mean elapsed time from each stamp to the last, and its summary."""
    with torch.enable_grad():
        prediction, trajectory = model.run(x)
        last = len(trajectory.after) - 1
        loss_last = (prediction[:, last] - target_values(y)[:, last]).pow(2).mean()
        norms = adjoint_norms(loss_last, trajectory.after)
    times = unpack_inputs(x).gaps.cumsum(dim=1)
    elapsed = (times[:, -1:] - times).mean(dim=0)
    return {"adjoint_norm": norms, "adjoint_elapsed": elapsed.tolist(), **decay_summary(norms)}
