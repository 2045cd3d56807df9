"""The density figure of a density-estimation task (the CNF toy task, Chen et al. 2018
Fig. 4): for each model, the target's samples, the learned density and the model's samples,
side by side, from the numbers a task's ``measure`` recorded.

A run records them in an epoch as ``density_grid`` (log p on a square grid over
[−extent, extent]², rows from the bottom up), ``density_extent``, ``model_samples`` and
``target_samples`` (lists of points). The figure shows, per model (a row), the last epoch of
its first ok run (lowest seed) that has them: a density is one run's, not a mean over seeds.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from matplotlib.figure import Figure as MplFigure

from harness.reports.aggregate import Group
from harness.reports.drawing import DEFAULT_FORMATS, Figure, write
from harness.running.safe_files import Destination

_FIELDS = ("density_grid", "density_extent", "model_samples", "target_samples")


@dataclass
class DensityRow:
    """One model's row: its label, the run (seed, epoch) shown, and the numbers drawn."""

    label: str
    seed: int
    epoch: int
    extent: float
    log_density: list[list[float]]
    model_samples: list[list[float]]
    target_samples: list[list[float]]


def densities(groups: Sequence[Group], out: Destination,
              formats: Sequence[str] = DEFAULT_FORMATS) -> Figure | None:
    """Target samples, learned density and model samples, one row per model with the numbers
    (None when no run recorded them)."""
    rows = [row for row in map(_row, groups) if row is not None]
    if not rows:
        return None
    title = f"{groups[0].task}: target, learned density and samples"
    figure = Figure("density", title, "Per model, one run (the seed and epoch named): samples "
                    "of the test data (left), the learned density p(x) on a grid (middle) and "
                    "samples of the model (right), on the same square.", rows)
    canvas = MplFigure(figsize=(9.0, 3.0 * len(rows) + 0.6), dpi=100, layout="constrained")
    axes = canvas.subplots(len(rows), 3, squeeze=False)
    for row, (target, density, samples) in zip(rows, axes):
        box = (-row.extent, row.extent, -row.extent, row.extent)
        target.scatter(*zip(*row.target_samples), s=2, color="black")
        density.imshow([[math.exp(v) for v in line] for line in row.log_density],
                       origin="lower", extent=box, cmap="viridis", aspect="equal")
        samples.scatter(*zip(*row.model_samples), s=2, color="tab:blue")
        for ax, name in ((target, "target (test data)"), (density, "learned density"),
                         (samples, "model samples")):
            ax.set(xlim=box[:2], ylim=box[2:], aspect="equal",
                   title=f"{row.label}:\n{name} (seed {row.seed}, epoch {row.epoch})")
            ax.title.set_fontsize(8)
    canvas.suptitle(title, fontsize=10)
    return write(figure, canvas, out, formats)


def _row(group: Group) -> DensityRow | None:
    """The group's row: the last epoch with the numbers of its lowest-seed ok run that has one."""
    for run in sorted(group.ok, key=lambda run: run["seed"]):
        epochs = [epoch for epoch in run["epochs"] if all(epoch.get(k) for k in _FIELDS)]
        if epochs:
            last = epochs[-1]
            return DensityRow(group.label, run["seed"], last["epoch"], last["density_extent"],
                              last["density_grid"], last["model_samples"],
                              last["target_samples"])
    return None
