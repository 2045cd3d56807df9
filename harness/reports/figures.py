"""Paper-style figures from result records, one function per kind.

Each function takes the groups of one (suite, task) (:func:`harness.reports.aggregate.group_runs`),
draws one figure across seeds — the mean as a line, ±1 std as a shaded band — writes it in
each of ``formats`` into ``out`` and returns a :class:`Figure` holding exactly the numbers it
plotted (so tests check data, not pixels), or None when the groups hold nothing to draw.
Every figure's title states the task, the settings and the number of seeds.

Matplotlib is used through :class:`matplotlib.figure.Figure` with its non-interactive canvases
(Agg for PNG), never pyplot: no display, no global state.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure as MplFigure
from matplotlib.ticker import MaxNLocator

from harness.reports.aggregate import Group, Stat, curve_stats, epoch_series, format_number

#: Fixed colours for the built-in families, so a model looks the same in every figure.
_FAMILY_COLORS = {"node": "tab:blue", "anode": "tab:orange", "sonode": "tab:green",
                  "hbnode": "tab:red", "ghbnode": "tab:purple"}
_OTHER_COLORS = ("tab:brown", "tab:pink", "tab:gray", "tab:olive", "tab:cyan")
_LINESTYLES = ("-", "--", ":", "-.")
DEFAULT_FORMATS = ("png", "svg")


@dataclass
class Series:
    """One line: y at x, the shaded band [low, high] (None where there is no spread), the
    number of seeds behind each point; for the tolerance figure also x's std and the colour
    value (the tolerance) of each point."""

    label: str
    x: list[float]
    y: list[float]
    low: list[float | None]
    high: list[float | None]
    n: list[int]
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
    panels: list[Panel]
    files: list[Path] = field(default_factory=list)


# --- the figure kinds ------------------------------------------------------------------------


def nfe_per_epoch(groups: Sequence[Group], out: Path,
                  formats: Sequence[str] = DEFAULT_FORMATS) -> Figure | None:
    """Forward and backward NFE per training iteration against epoch, one line per model
    (the paper's Figs 1, 4, 5, 7, 8). The backward panel is left out without the adjoint."""
    panels = [_epoch_panel(groups, "forward_nfe", "forward NFE per iteration"),
              _epoch_panel(groups, "backward_nfe", "backward NFE per iteration")]
    return _epoch_figure(groups, out, formats, "nfe", panels,
                         "NFE counted per training iteration, mean over the epoch's iterations.")


def learning_curves(groups: Sequence[Group], out: Path,
                    formats: Sequence[str] = DEFAULT_FORMATS) -> Figure | None:
    """Training loss and the test metric against epoch, one line per model."""
    metric = _metric(groups)
    panels = [_epoch_panel(groups, "loss", "training loss", log_y=True),
              _epoch_panel(groups, f"test_{metric}", f"test {metric}")]
    return _epoch_figure(groups, out, formats, "learning", panels,
                         "Test metric on the epochs evaluated. Training loss (mean over the "
                         "epoch's samples) on a log axis: its line is the geometric mean over "
                         "seeds, its band ±1 std of log10.")


def time_per_epoch(groups: Sequence[Group], out: Path,
                   formats: Sequence[str] = DEFAULT_FORMATS) -> Figure | None:
    """Wall time of each epoch's training (forward, backward, optimiser step) against epoch."""
    panels = [_epoch_panel(groups, "train_time_s", "training time per epoch (s)")]
    return _epoch_figure(groups, out, formats, "time", panels,
                         "Wall time of the epoch's training: forward, backward and optimiser "
                         "steps.")


def nfe_vs_tolerance(groups: Sequence[Group], out: Path,
                     formats: Sequence[str] = DEFAULT_FORMATS) -> Figure | None:
    """Backward against forward NFE per iteration, one point per tolerance coloured by the
    tolerance, one line per model (the paper's Fig. 6). Needs two tolerances or more."""
    by_model: dict[str, list[tuple[float, Stat, Stat]]] = {}
    for group in groups:
        tol = _tolerance(group)
        forward, backward = group.value("forward_nfe"), group.value("backward_nfe")
        if tol is not None and forward.n and backward.n:
            by_model.setdefault(group.model, []).append((tol, forward, backward))
    tolerances = {tol for points in by_model.values() for tol, _, _ in points}
    if len(tolerances) < 2:
        return None
    series = []
    for model, points in by_model.items():
        points.sort(key=lambda point: -point[0])
        series.append(Series(
            label=model, x=[f.mean for _, f, _ in points], y=[b.mean for _, _, b in points],
            low=[_minus(b) for _, _, b in points], high=[_plus(b) for _, _, b in points],
            n=[min(f.n, b.n) for _, f, b in points], x_std=[f.std for _, f, _ in points],
            color_values=[tol for tol, _, _ in points]))
    panel = Panel("NFE vs tolerance", "forward NFE per iteration",
                  "backward NFE per iteration", series)
    figure = Figure("nfe-vs-tolerance", _title(groups), "Each point: mean over the run's "
                    "epochs and over seeds, bars ±1 std across seeds; colour: the solver "
                    "tolerance (rtol).", [panel])
    return _save(figure, out, formats, _draw_tolerance)


def adjoint_decay(groups: Sequence[Group], out: Path,
                  formats: Sequence[str] = DEFAULT_FORMATS) -> Figure | None:
    """‖∂L_last/∂s(t)‖ against T − t, one line per model, one panel for the first and one for
    the last epoch the curve was recorded after (the paper's Fig. 3)."""
    recorded = sorted({epoch["epoch"] for group in groups for run in group.ok
                       for epoch in run["epochs"] if epoch.get("adjoint_norm")})
    if not recorded:
        return None
    panels = []
    for number in dict.fromkeys([recorded[0], recorded[-1]]):
        series = []
        for group in groups:
            epochs = [epoch for run in group.ok for epoch in run["epochs"]
                      if epoch["epoch"] == number and epoch.get("adjoint_norm")]
            if epochs:
                elapsed = curve_stats([epoch["adjoint_elapsed"] for epoch in epochs])
                norms = curve_stats([epoch["adjoint_norm"] for epoch in epochs], log=True)
                series.append(_log_series(group.label, [s.mean for s in elapsed], norms))
        panels.append(Panel(f"after epoch {number}", "T − t (time to the last stamp)",
                            "‖∂L/∂s(t)‖", series, log_y=True))
    figure = Figure("adjoint-decay", _title(groups), "Norm of the loss's gradient at the last "
                    "stamp with respect to the whole state at each earlier stamp; line: "
                    "geometric mean over seeds, band: ±1 std of log10 (norms that underflowed "
                    "to 0 are left out).", panels)
    return _save(figure, out, formats, _draw_lines)


def h_norm_growth(groups: Sequence[Group], out: Path,
                  formats: Sequence[str] = DEFAULT_FORMATS) -> Figure | None:
    """‖h(t)‖ against the sample t at initialisation, one line per model (the paper's Fig. 2,
    the Silverbox study)."""
    series = []
    for group in groups:
        curves = [epoch["h_norm"] for run in group.ok for epoch in run["epochs"]
                  if epoch.get("h_norm")]
        if curves:
            norms = curve_stats(curves, log=True)
            series.append(_log_series(group.label, list(range(len(norms))), norms))
    if not series:
        return None
    figure = Figure("h-norm", _title(groups), "‖h(t)‖ over the batch at initialisation; "
                    "line: geometric mean over seeds, band: ±1 std of log10.",
                    [Panel("‖h(t)‖ at initialisation", "t (samples)", "‖h(t)‖", series,
                           log_y=True)])
    return _save(figure, out, formats, _draw_lines)


#: Every figure kind, in the order a report shows them.
FIGURE_KINDS = (nfe_per_epoch, learning_curves, time_per_epoch, nfe_vs_tolerance,
                adjoint_decay, h_norm_growth)


def draw_all(groups: Sequence[Group], out: Path, prefix: str,
             formats: Sequence[str] = DEFAULT_FORMATS) -> list[Figure]:
    """Every figure kind that has data in the groups, written as ``out/<prefix>/<kind>.<fmt>``."""
    figures = []
    for kind in FIGURE_KINDS:
        figure = kind(groups, out / prefix, formats)
        if figure is not None:
            figures.append(figure)
    return figures


# --- titles and settings ---------------------------------------------------------------------


def describe_settings(groups: Sequence[Group]) -> str:
    """The settings the groups' runs share, and the range of those that differ, e.g.
    ``dopri5, tol 1e-07, adjoint, batch full, lr 0.01, 300 epochs``."""
    configs = [run.get("config", {}) for group in groups for run in group.runs]
    solver = [config.get("solver", {}) for config in configs]

    def values(items: list[Any]) -> str:
        present = sorted({v for v in items if v is not None}, key=lambda v: (str(type(v)), v))
        if not present:
            return ""
        if len(present) == 1:
            return format_number(present[0])
        return f"{format_number(present[0])}…{format_number(present[-1])}"

    parts = [values([s.get("method") for s in solver])]
    rtol, atol = values([s.get("rtol") for s in solver]), values([s.get("atol") for s in solver])
    parts.append(f"tol {rtol}" if rtol == atol else f"rtol {rtol}, atol {atol}")
    adjoint = {s.get("adjoint") for s in solver}
    parts.append("adjoint" if adjoint == {True} else "backprop" if adjoint == {False} else
                 "adjoint and backprop" if adjoint >= {True, False} else "")
    batch = {config.get("batch_size", "?") for config in configs}
    parts.append("full batch" if batch == {None} else
                 f"batch {values([b for b in batch if b is not None])}")
    parts.append(f"lr {values([c.get('lr') for c in configs])}")
    epochs = values([c.get("epochs") for c in configs])
    parts.append(f"{epochs} epoch{'' if epochs == '1' else 's'}")
    return ", ".join(part for part in parts if part and not part.endswith(" "))


def describe_seeds(groups: Sequence[Group]) -> str:
    """How many ok seeds each model has (``3 seeds``, ``1–3 seeds``), and models without any."""
    counts = [len({run["seed"] for run in group.ok}) for group in groups]
    present = [count for count in counts if count]
    text = "no ok run"
    if present:
        low, high = min(present), max(present)
        span = str(low) if low == high else f"{low}–{high}"
        text = f"{span} seed{'s' * (high != 1)} per model"
    missing = [group.label for group, count in zip(groups, counts) if not count]
    return text + (f"; no ok run: {', '.join(missing)}" if missing else "")


def _title(groups: Sequence[Group]) -> str:
    return f"{groups[0].task} — {describe_settings(groups)} — {describe_seeds(groups)}"


# --- series ----------------------------------------------------------------------------------


def _epoch_panel(groups: Sequence[Group], name: str, ylabel: str, log_y: bool = False) -> Panel:
    """One line per group against epoch; with ``log_y`` (when every value is positive) a
    log axis and the geometric mean with a ±1 std band in log10, as a band in linear units
    would reach below zero."""
    values = [epoch[name] for group in groups for run in group.ok for epoch in run["epochs"]
              if isinstance(epoch.get(name), (int, float))]
    log_y = log_y and bool(values) and all(v > 0 for v in values)
    series = []
    for group in groups:
        epochs, stats = epoch_series(group.ok, name, log=log_y)
        if not epochs:
            continue
        x = [float(e) for e in epochs]
        series.append(_log_series(group.label, x, stats) if log_y else
                      Series(group.label, x, [s.mean for s in stats], [_minus(s) for s in stats],
                             [_plus(s) for s in stats], [s.n for s in stats]))
    return Panel(ylabel, "epoch", ylabel, series, log_y=log_y, integer_x=True)


def _epoch_figure(groups: Sequence[Group], out: Path, formats: Sequence[str], name: str,
                  panels: list[Panel], caption: str) -> Figure | None:
    """A per-epoch figure, when some run has two epochs or more to draw a line through."""
    panels = [panel for panel in panels if panel.series]
    if not any(len(series.x) > 1 for panel in panels for series in panel.series):
        return None
    caption = f"Line: mean over seeds; band: ±1 std across seeds. {caption}"
    return _save(Figure(name, _title(groups), caption, panels), out, formats, _draw_lines)


def _log_series(label: str, x: list[float], log_stats: list[Stat]) -> Series:
    """A series from stats of log10 values: y the geometric mean, band ±1 std in log10."""
    points = [(xi, s) for xi, s in zip(x, log_stats) if s.n]
    return Series(label, [xi for xi, _ in points], [10 ** s.mean for _, s in points],
                  [None if s.std is None else 10 ** (s.mean - s.std) for _, s in points],
                  [None if s.std is None else 10 ** (s.mean + s.std) for _, s in points],
                  [s.n for _, s in points])


def _minus(s: Stat) -> float | None:
    return None if s.std is None or s.mean is None else s.mean - s.std


def _plus(s: Stat) -> float | None:
    return None if s.std is None or s.mean is None else s.mean + s.std


def _metric(groups: Sequence[Group]) -> str:
    return groups[0].metric


def _tolerance(group: Group) -> float | None:
    rtols = {run.get("config", {}).get("solver", {}).get("rtol") for run in group.runs}
    return rtols.pop() if len(rtols) == 1 else None


# --- drawing ---------------------------------------------------------------------------------


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


def _draw_lines(figure: Figure, canvas: MplFigure) -> None:
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
        _decorate(ax, panel)


def _draw_tolerance(figure: Figure, canvas: MplFigure) -> None:
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
        points = ax.scatter(series.x, series.y, c=series.color_values, norm=norm,
                            cmap="viridis", edgecolors=color, linewidths=1.2, zorder=3, s=40)
    if points is not None:
        canvas.colorbar(points, ax=ax, label="tolerance (rtol)")
    _decorate(ax, panel)


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


def _save(figure: Figure, out: Path, formats: Sequence[str], draw: Any) -> Figure:
    """Draw the figure and write it as ``out/<name>.<format>`` for each format."""
    width = 5.0 * len(figure.panels) + (1.0 if draw is _draw_tolerance else 0.0)
    canvas = MplFigure(figsize=(max(width, 6.0), 4.2), dpi=100, layout="constrained")
    draw(figure, canvas)
    canvas.suptitle(_wrap(figure.title, int(14 * max(width, 6.0))), fontsize=10)
    out.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context({"svg.hashsalt": "harness"}):
        for fmt in formats:
            path = out / f"{figure.name}.{fmt}"
            canvas.savefig(path, format=fmt, metadata=_METADATA.get(fmt))
            figure.files.append(path)
    return figure


#: No dates or versions in the files, so that the same records give the same bytes.
_METADATA = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}}


def _wrap(text: str, width: int) -> str:
    """Break a title at its ' — ' separators when it is longer than ``width`` characters."""
    return text if len(text) <= width else "\n".join(text.split(" — "))
