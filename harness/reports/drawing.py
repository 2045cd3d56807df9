"""Figures as data and as files: a :class:`Figure` holds its panels and the numbers of every
line (so tests check data, not pixels); :func:`save` draws it with matplotlib and writes it in
each format asked for.

Matplotlib is used through :class:`matplotlib.figure.Figure` with its non-interactive canvases
(Agg for PNG), never pyplot: no display, no global state. The files carry no dates or versions,
so the same records give the same bytes.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure as MplFigure
from matplotlib.ticker import MaxNLocator

from harness.running.safe_files import Destination, Folder

#: Fixed colours for the built-in families, so a model looks the same in every figure.
_FAMILY_COLORS = {"node": "tab:blue", "anode": "tab:orange", "sonode": "tab:green",
                  "hbnode": "tab:red", "ghbnode": "tab:purple"}
_OTHER_COLORS = ("tab:brown", "tab:pink", "tab:gray", "tab:olive", "tab:cyan")
_LINESTYLES = ("-", "--", ":", "-.")
DEFAULT_FORMATS = ("png", "svg")


@dataclass
class Series:
    """One line: y at x, the shaded band [low, high] (±1 std; None where there is no spread),
    the number of seeds behind each point and the 95 % confidence interval of each mean
    [ci_low, ci_high] (None below two seeds); for the tolerance figure also x's std and the
    colour value (the tolerance) of each point."""

    label: str
    x: list[float]
    y: list[float]
    low: list[float | None]
    high: list[float | None]
    n: list[int]
    ci_low: list[float | None] = field(default_factory=list)
    ci_high: list[float | None] = field(default_factory=list)
    x_std: list[float | None] = field(default_factory=list)
    color_values: list[float] = field(default_factory=list)


@dataclass
class Panel:
    """One axes of a figure."""

    title: str
    xlabel: str
    ylabel: str
    series: list[Series]
    log_x: bool = False
    log_y: bool = False
    integer_x: bool = False  # x is a count (epochs): ticks on whole numbers only


@dataclass
class Figure:
    """A figure as drawn: its file stem, title (task, settings, seeds), caption and panels,
    and the files written."""

    name: str
    title: str
    caption: str
    panels: list[Any]
    """:class:`Panel` for the line figures; a figure kind of its own may hold its own rows
    (the density figure's :class:`harness.reports.density_figures.DensityRow`)."""
    files: list[Path] = field(default_factory=list)


def _colors(labels: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Colour by model (the label's first word), line style by its setting."""
    others: dict[str, str] = {}
    styles: dict[str, dict[str, str]] = {}
    result = {}
    for label in labels:
        model, _, setting = label.partition(" ")
        color = _FAMILY_COLORS.get(model) or others.setdefault(
            model, _OTHER_COLORS[len(others) % len(_OTHER_COLORS)])
        style = styles.setdefault(model, {}).setdefault(
            setting, _LINESTYLES[len(styles[model]) % len(_LINESTYLES)])
        result[label] = (color, style)
    return result


def draw_lines(figure: Figure, canvas: MplFigure) -> None:
    axes = canvas.subplots(1, len(figure.panels), squeeze=False)[0]
    for ax, panel in zip(axes, figure.panels):
        styles = _colors([series.label for series in panel.series])
        for series in panel.series:
            color, style = styles[series.label]
            marker = "o" if len(series.x) < 12 else None
            ax.plot(series.x, series.y, style, color=color, marker=marker, markersize=3,
                    label=series.label)
            band = [(x, lo, hi) for x, lo, hi in zip(series.x, series.low, series.high)
                    if lo is not None and hi is not None]
            if band:
                ax.fill_between([b[0] for b in band], [b[1] for b in band],
                                [b[2] for b in band], color=color, alpha=0.2, linewidth=0)
            interval = [(x, lo, hi) for x, lo, hi in zip(series.x, series.ci_low, series.ci_high)
                        if lo is not None and hi is not None]
            if interval:  # fainter than the std band: where both cover, the shade is darkest
                ax.fill_between([b[0] for b in interval], [b[1] for b in interval],
                                [b[2] for b in interval], color=color, alpha=0.08, linewidth=0)
        _decorate(ax, panel)


def draw_tolerance(figure: Figure, canvas: MplFigure) -> None:
    ax = canvas.subplots()
    panel = figure.panels[0]
    tolerances = [tol for series in panel.series for tol in series.color_values]
    norm = LogNorm(min(tolerances), max(tolerances))
    styles = _colors([series.label for series in panel.series])
    points = None
    for series in panel.series:
        color, _ = styles[series.label]
        ax.plot(series.x, series.y, "-", color=color, linewidth=1, label=series.label)
        yerr = [[0 if lo is None else y - lo for y, lo in zip(series.y, series.low)],
                [0 if hi is None else hi - y for y, hi in zip(series.y, series.high)]]
        xerr = [0 if s is None else s for s in series.x_std]
        ax.errorbar(series.x, series.y, xerr=xerr, yerr=yerr, fmt="none", ecolor=color,
                    elinewidth=0.8)
        interval = [(x, y, lo, hi) for x, y, lo, hi in zip(series.x, series.y, series.ci_low,
                                                           series.ci_high)
                    if lo is not None and hi is not None]
        if interval:
            ax.errorbar([i[0] for i in interval], [i[1] for i in interval],
                        yerr=[[i[1] - i[2] for i in interval], [i[3] - i[1] for i in interval]],
                        fmt="none", ecolor=color, elinewidth=0.5, capsize=4, linestyle=":")
        points = ax.scatter(series.x, series.y, c=series.color_values, norm=norm,
                            cmap="viridis", edgecolors=color, linewidths=1.2, zorder=3, s=40)
    if points is not None:
        canvas.colorbar(points, ax=ax, label="tolerance (rtol)")
    _decorate(ax, panel)


def colors(labels: Sequence[str]) -> dict[str, str]:
    """Each label's colour as every figure draws it: by model, the label's first word."""
    return {label: color for label, (color, _) in _colors(labels).items()}


def _decorate(ax: Any, panel: Panel) -> None:
    ax.set_title(panel.title, fontsize=10)
    ax.set_xlabel(panel.xlabel)
    ax.set_ylabel(panel.ylabel)
    if panel.log_x:
        ax.set_xscale("log")
    if panel.log_y:
        ax.set_yscale("log")
    if panel.integer_x:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    if panel.series:
        ax.legend(fontsize=8)


def save(figure: Figure, out: Destination, formats: Sequence[str],
         draw: Callable[[Figure, MplFigure], None]) -> Figure:
    """Draw the figure with ``draw`` (:func:`draw_lines` or :func:`draw_tolerance`) and write
    it as ``out/<name>.<format>`` for each format."""
    width = 5.0 * len(figure.panels) + (1.0 if draw is draw_tolerance else 0.0)
    canvas = MplFigure(figsize=(max(width, 6.0), 4.2), dpi=100, layout="constrained")
    draw(figure, canvas)
    canvas.suptitle(_wrap(figure.title, int(14 * max(width, 6.0))), fontsize=10)
    return write(figure, canvas, out, formats)


def write(figure: Figure, canvas: MplFigure, out: Destination,
          formats: Sequence[str]) -> Figure:
    """Write a drawn figure as ``out/<name>.<format>`` for each format (no link followed below
    ``out``'s root), the same records giving the same bytes; the files are added to
    ``figure.files``."""
    folder = Folder.of(out)
    with matplotlib.rc_context({"svg.hashsalt": "harness"}):
        for fmt in formats:
            name = f"{figure.name}.{fmt}"
            with folder.replacing(name) as handle:
                canvas.savefig(handle, format=fmt, metadata=_METADATA.get(fmt))
            figure.files.append(folder.path / name)
    return figure


#: No dates or versions in the files, so that the same records give the same bytes.
_METADATA = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}}


def _wrap(text: str, width: int) -> str:
    """Break a title at its ' — ' separators when it is longer than ``width`` characters."""
    return text if len(text) <= width else "\n".join(text.split(" — "))
