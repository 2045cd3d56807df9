"""Walker2D kinematic simulation (HBNODE paper §5.4, appendix E.5).

400 rollouts of a MuJoCo Walker2d policy, one [T, 17] array each. The files are split 75 %
train / 10 % validation / 15 % test after a shuffle with the fixed ``split_seed``. In each
rollout, inputs are arr[:-1] and targets arr[1:] (the next stamp); a seeded random 10 % of the
input stamps is dropped with their targets, and the number of stamps since the previous kept
one (×``time_scale``, 1/64 as in the authors' code) is the gap the ODE crosses before each
observation. Windows of 64 kept stamps, stride 16. The model predicts, at each stamp, the next
stamp from the state after reading the observation (autoregressive one-step forecast); the
loss is the MSE. The data are not normalised (as in the ODE-LSTM data set).

The model: f = fc_n (one linear layer); the cell reads [state, features] through
fc_h1 → Tanh → fc_h2 → Tanh → fc_{P·n}; the head fc_17 reads h. The state starts at zero,
except ANODE-RNN's, whose first 5 channels come from a dense layer reading the first
observation (widths ``c: 5``, the "ANODE-style augmentation" behind the paper's 8,815).

Under the ``authors-code`` profile (docs/profiles.md) the time scale is the authors' 1/64
(``walker2d/*_rnn_walker.py``, the times divided by 64.0 before every call; the paper gives
none, so it is also this task's default) and the training windows go in order.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from harness import BuildContext, WidthNames, hookimpl
from harness.toolkit import (ODERNN, ONE_STEP, Autonomous, gaps, InitialState, keep_stamps, mlp,
    pack_inputs, pack_targets, Trajectory, unpack_inputs, window_starts)
from harness_plugins.tasks.sequence_files import missing_walker, read_rollout, walker_files
from harness_plugins.tasks.sequence_task import (SEQUENCE_OPTIONS, SequenceData, SequenceModel,
                                                 SequenceTask, sequence_data)

FEATURES = 17
TEST_SHARE, VALIDATION_SHARE = 0.15, 0.10


def split_files(files: list[Path], split_seed: int) -> tuple[list[Path], list[Path], list[Path]]:
    """(train, validation, test) files: a fixed shuffle, then 15 % test, 10 % validation."""
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(split_seed))
    shuffled = [files[i] for i in order]
    n_test = int(TEST_SHARE * len(files))
    n_val = int((TEST_SHARE + VALIDATION_SHARE) * len(files)) - n_test
    test, val, train = (shuffled[:n_test], shuffled[n_test:n_test + n_val],
                        shuffled[n_test + n_val:])
    return sorted(train), sorted(val), sorted(test)


def rollout_windows(rollout: Tensor, options: dict[str, Any],
                    generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Packed (x, y) windows of one rollout after dropping stamps."""
    inputs, targets = rollout[:-1], rollout[1:]
    kept = keep_stamps(len(inputs), options["drop"], generator)
    elapsed = gaps(kept, -1).to(torch.get_default_dtype()) * options["time_scale"]
    window = options["window"]
    starts = window_starts(len(kept), window, options["stride"])
    if not starts:
        width = 2 + FEATURES
        return torch.empty(0, window, width), torch.empty(0, window, width)
    index = torch.tensor(starts)[:, None] + torch.arange(window)  # all windows at once
    stamps = kept[index]
    return (pack_inputs(inputs[stamps], elapsed[index]),
            pack_targets(targets[stamps], [ONE_STEP] * window, {ONE_STEP: 1.0}))


def split_windows(files: list[Path], options: dict[str, Any], data_seed: int
                  ) -> list[tuple[Tensor, Tensor]]:
    """(x, y) of train, validation and test; stamps dropped file by file in name order."""
    generator = torch.Generator().manual_seed(data_seed)
    windows = {path: rollout_windows(read_rollout(path), options, generator) for path in files}
    parts = []
    for split in split_files(files, options["split_seed"]):
        pairs = [windows[path] for path in split]
        if sum(len(x) for x, _ in pairs) == 0:
            raise ValueError(f"{files[0].parent}: a split of its {len(files)} rollout files "
                             f"has no {options['window']}-stamp window")
        parts.append((torch.cat([x for x, _ in pairs]), torch.cat([y for _, y in pairs])))
    return parts


class WalkerModel(SequenceModel):
    def __init__(self, initial: InitialState, hybrid: ODERNN, head: nn.Module) -> None:
        super().__init__()
        self.initial, self.hybrid, self.head = initial, hybrid, head

    def run(self, x: Tensor) -> tuple[Tensor, Trajectory]:
        inputs = unpack_inputs(x)
        z0 = self.initial(inputs.features[:, 0])
        trajectory = self.hybrid(z0, inputs.features, inputs.gaps)
        return self.head(self.hybrid.read(torch.stack(trajectory.after, dim=1))), trajectory


class Walker2D(SequenceTask):
    name = "walker2d"
    schedule = {"epochs": 500, "batch_size": 256, "lr": 0.003, "grad_clip": 1.0,
                "solver": {"method": "dopri5", "rtol": 1e-7, "atol": 1e-7}}
    widths = {"node": {"n": 24, "h1": 72, "h2": 48, "c": 0},
              "anode": {"n": 24, "h1": 72, "h2": 48, "c": 5},
              "sonode": {"n": 23, "h1": 46, "h2": 46, "c": 0},
              "hbnode": {"n": 24, "h1": 48, "h2": 48, "c": 0},
              "ghbnode": {"n": 24, "h1": 48, "h2": 48, "c": 0}}
    #: c: the state channels the initial-state layer supplies (default all; 0: none, zeros).
    width_names = WidthNames(required={"n", "h1", "h2"}, optional={"c"})
    paper_params = {"node": 8729, "anode": 8815, "hbnode": 8899, "ghbnode": 8899}
    options = {**SEQUENCE_OPTIONS, "split_seed": 0, "window": 64, "stride": 16,
               "time_scale": 1 / 64}
    profiles = {"authors-code": {"task_options": {"time_scale": 1 / 64, "shuffle": False}}}
    tiny = {"batch_size": 8, "task_options": {"train_windows": 8, "eval_windows": 8}}
    metric = "one_step_mse"

    def data(self, options: dict[str, Any], seed: int, data_root: str | None,
             device: torch.device, batch_size: int | None) -> SequenceData:
        data_seed = seed if options["data_seed"] is None else options["data_seed"]
        splits = split_windows(walker_files(data_root), options, data_seed)
        return sequence_data(splits, options, data_seed, device, batch_size)

    def check_data(self, options: dict[str, Any], data_root: str | None) -> list[str]:
        return missing_walker(data_root)

    def build_model(self, ctx: BuildContext) -> nn.Module:
        n, h1, h2 = ctx.widths["n"], ctx.widths["h1"], ctx.widths["h2"]
        state = ctx.n_parts * n
        f = nn.Linear(ctx.family.f_input_parts * n, n)
        cell = mlp([state + FEATURES, h1, h2, state], nn.Tanh)
        hybrid = ODERNN(ctx.ode(Autonomous(f), n), cell)
        initial = InitialState(FEATURES, ctx.widths.get("c", state), state)
        return WalkerModel(initial, hybrid, nn.Linear(n, FEATURES))


@hookimpl
def harness_tasks() -> list[type[Walker2D]]:
    return [Walker2D]
