"""The path figure of a series task (the spirals task, Chen et al. 2018 Fig. 8): example series
in the plane, their clean path, the points observed and each model's path — its reconstruction
over the observation window solid, its extrapolation beyond it dashed.

A run records them in an epoch as ``spiral_paths``: per example series ``clockwise``, ``split``
(how many stamps the observation window has), ``clean`` and ``predicted`` (a point per stamp)
and ``observed`` (the points seen). The figure has a row per setting (the runs' ``n``, say)
and a column per example series; each group contributes the last epoch of its lowest-seed ok
run that has them, and only groups of the first group's seed (other seeds draw other series).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from matplotlib.figure import Figure as MplFigure

from harness.reports.aggregate import Group, setting_label
from harness.reports.drawing import DEFAULT_FORMATS, Figure, colors, write
from harness.running.safe_files import Destination

FIELD = "spiral_paths"


@dataclass
class PathPanel:
    """One panel: a setting's example series, with each model's path (label → points)."""

    setting: str
    series: int
    clockwise: bool
    clean: list[list[float]]
    observed: list[list[float]]
    reconstructed: dict[str, list[list[float]]] = field(default_factory=dict)
    extrapolated: dict[str, list[list[float]]] = field(default_factory=dict)


def spiral_paths(groups: Sequence[Group], out: Destination,
                 formats: Sequence[str] = DEFAULT_FORMATS, count: int = 3) -> Figure | None:
    """The first ``count`` recorded series per setting, every model's path in each (None when
    no run recorded them)."""
    chosen = [entry for entry in map(_recorded, groups) if entry is not None]
    chosen = [entry for entry in chosen if entry[1] == chosen[0][1]] if chosen else []
    if not chosen:
        return None
    panels: dict[tuple[str, int], PathPanel] = {}
    for group, _, paths in chosen:
        setting = setting_label(group.setting)
        for i, path in enumerate(paths[:count]):
            panel = panels.setdefault((setting, i), PathPanel(
                setting, i + 1, path["clockwise"], path["clean"], path["observed"]))
            label = _model_label(group)
            panel.reconstructed[label] = path["predicted"][:path["split"]]
            panel.extrapolated[label] = path["predicted"][path["split"] - 1:]
    settings = list(dict.fromkeys(setting for setting, _ in panels))
    columns = max(i for _, i in panels) + 1
    title = f"{groups[0].task}: reconstructed and extrapolated series (seed {chosen[0][1]})"
    figure = Figure("spirals", title, "Per setting (row) and example series (column): the "
                    "clean path (grey), the points observed (dots), each model's reconstruction "
                    "over the observation window (solid) and extrapolation beyond it (dashed), "
                    "from the last epoch recorded of one run.", list(panels.values()))
    canvas = MplFigure(figsize=(4.0 * columns + 1.6, 3.6 * len(settings) + 0.6), dpi=100,
                       layout="constrained")
    axes = canvas.subplots(len(settings), columns, squeeze=False)
    palette = colors(list(dict.fromkeys(_model_label(group) for group, _, _ in chosen)))
    for (setting, i), panel in panels.items():
        _draw(axes[settings.index(setting)][i], panel, palette)
    handles, labels = axes[0][0].get_legend_handles_labels()
    canvas.legend(handles, labels, loc="outside right upper", fontsize=8)
    canvas.suptitle(title, fontsize=10)
    return write(figure, canvas, out, formats)


def _draw(ax: Any, panel: PathPanel, palette: dict[str, str]) -> None:
    ax.plot(*zip(*panel.clean), color="0.6", linewidth=1, label="clean path")
    ax.scatter(*zip(*panel.observed), s=6, color="black", label="observed", zorder=3)
    for label, points in panel.reconstructed.items():
        ax.plot(*zip(*points), "-", color=palette[label], linewidth=1.2, label=label)
        ax.plot(*zip(*panel.extrapolated[label]), "--", color=palette[label], linewidth=1.2)
    direction = "clockwise" if panel.clockwise else "counterclockwise"
    ax.set_title(f"{panel.setting + ': ' if panel.setting else ''}series {panel.series} "
                 f"({direction})", fontsize=9)
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(True, alpha=0.3)


def _recorded(group: Group) -> tuple[Group, Any, list[dict[str, Any]]] | None:
    """The group, the seed and the paths of the last epoch that has them, in its lowest-seed
    ok run that has any."""
    for run in sorted(group.ok, key=lambda run: run.get("seed", 0)):
        epochs = [epoch for epoch in run["epochs"] if epoch.get(FIELD)]
        if epochs:
            return group, run.get("seed"), epochs[-1][FIELD]
    return None


def _model_label(group: Group) -> str:
    """The model without its setting (the row says it); a baseline says so."""
    return f"{group.model} (baseline)" if group.kind == "baseline" else group.model
