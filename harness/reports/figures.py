"""Paper-style figures from result records, one function per kind.

Each function takes the groups of one (suite, task) (:func:`harness.reports.aggregate.group_runs`),
draws one figure across seeds — the mean as a line, ±1 std as a shaded band, the 95 %
confidence interval of the mean as a fainter band (capped bars where points stand alone) —
writes it in each of ``formats`` into ``out`` (:func:`harness.reports.drawing.save`) and
returns a :class:`harness.reports.drawing.Figure` holding exactly the numbers it plotted, or
None when the groups hold nothing to draw. Every figure's title states the task, the settings
and the number of seeds.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.reports.aggregate import (Group, Stat, curve_stats, epoch_series, format_number,
                                      setting_label)
from harness.reports.density_figures import densities
from harness.reports.drawing import (DEFAULT_FORMATS, Figure, Panel, Series, draw_lines,
                                     draw_tolerance, save)
from harness.reports.path_figures import spiral_paths
from harness.running.safe_files import Destination
from harness.solvers.built_in import uses_tolerance


# --- the figure kinds ------------------------------------------------------------------------


def nfe_per_epoch(groups: Sequence[Group], out: Destination,
                  formats: Sequence[str] = DEFAULT_FORMATS) -> Figure | None:
    """Forward and backward NFE per training iteration against epoch, one line per model
    (the paper's Figs 1, 4, 5, 7, 8). The backward panel is left out without the adjoint."""
    panels = [_epoch_panel(groups, "forward_nfe", "forward NFE per iteration"),
              _epoch_panel(groups, "backward_nfe", "backward NFE per iteration")]
    return _epoch_figure(groups, out, formats, "nfe", panels,
                         "NFE counted per training iteration, mean over the epoch's iterations.")


def learning_curves(groups: Sequence[Group], out: Destination,
                    formats: Sequence[str] = DEFAULT_FORMATS) -> Figure | None:
    """Training loss and the test metric against epoch, one line per model."""
    metric = _metric(groups)
    panels = [_epoch_panel(groups, "loss", "training loss", log_y=True),
              _epoch_panel(groups, f"test_{metric}", f"test {metric}")]
    return _epoch_figure(groups, out, formats, "learning", panels,
                         "Test metric on the epochs evaluated. Training loss (mean over the "
                         "epoch's samples) on a log axis: its line is the geometric mean over "
                         "seeds, its band ±1 std of log10 and its fainter band the CI of the "
                         "mean log10.")


def time_per_epoch(groups: Sequence[Group], out: Destination,
                   formats: Sequence[str] = DEFAULT_FORMATS) -> Figure | None:
    """Wall time of each epoch's training (forward, backward, optimiser step) against epoch;
    runs trained in an ensemble are left out (their times are the ensemble's)."""
    panels = [_epoch_panel(groups, "train_time_s", "training time per epoch (s)")]
    return _epoch_figure(groups, out, formats, "time", panels,
                         "Wall time of the epoch's training: forward, backward and optimiser "
                         "steps; runs trained in an ensemble are left out (their times are the "
                         "ensemble's).")


def nfe_vs_tolerance(groups: Sequence[Group], out: Destination,
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
            n=[min(f.n, b.n) for _, f, b in points], ci_low=[b.low for _, _, b in points],
            ci_high=[b.high for _, _, b in points], x_std=[f.std for _, f, _ in points],
            color_values=[tol for tol, _, _ in points]))
    panel = Panel("NFE vs tolerance", "forward NFE per iteration",
                  "backward NFE per iteration", series)
    figure = Figure("nfe-vs-tolerance", _title(groups), "Each point: mean over the run's "
                    "epochs and over seeds, bars ±1 std across seeds, capped dotted bars the "
                    "95 % CI of the mean backward NFE; colour: the solver tolerance (rtol).",
                    [panel])
    return save(figure, out, formats, draw_tolerance)


def adjoint_decay(groups: Sequence[Group], out: Destination,
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
                    "geometric mean over seeds, band: ±1 std of log10, fainter band: 95 % CI "
                    "of the mean log10 (norms that underflowed to 0 are left out).", panels)
    return save(figure, out, formats, draw_lines)


def h_norm_growth(groups: Sequence[Group], out: Destination,
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
                    "line: geometric mean over seeds, band: ±1 std of log10, fainter band: 95 % "
                    "CI of the mean log10.",
                    [Panel("‖h(t)‖ at initialisation", "t (samples)", "‖h(t)‖", series,
                           log_y=True)])
    return save(figure, out, formats, draw_lines)


def metric_vs_setting(groups: Sequence[Group], out: Destination,
                      formats: Sequence[str] = DEFAULT_FORMATS) -> Figure | None:
    """The test metric at the last epoch against each numeric task option that sweeps, one panel
    per option and one line per value of the other settings with two points or more (the
    GRAND++ chapter's accuracy against T, Fig. 4.2, and against labels per class)."""
    name = f"test_{_metric(groups)}"
    keys = [key for key in dict.fromkeys(k for g in groups for k in g.setting)
            if key.startswith("task_options.") and len({g.setting.get(key) for g in groups if _numeric(g.setting.get(key))}) > 1]
    panels = []
    for key in keys:
        lines: dict[str, list[tuple[float, Stat]]] = {}
        for group in groups:
            value, stats = group.setting.get(key), group.value(name, at="last")
            if _numeric(value) and stats.n:
                rest = setting_label({k: v for k, v in group.setting.items() if k != key})
                label = f"{group.model} ({rest})" if rest else group.model
                lines.setdefault(label, []).append((float(value), stats))
        series = [Series(label, [x for x, _ in points], [s.mean for _, s in points],
                         [_minus(s) for _, s in points], [_plus(s) for _, s in points],
                         [s.n for _, s in points], [s.low for _, s in points],
                         [s.high for _, s in points])
                  for label, points in ((label, sorted(points, key=lambda p: p[0]))
                                        for label, points in lines.items()) if len(points) > 1]
        if series:
            short = key.rsplit(".", 1)[-1]
            positive = all(x > 0 for line in series for x in line.x)
            panels.append(Panel(f"{name} against {short}", short, f"{name} (last epoch)",
                                series, log_x=positive and max(max(s.x) for s in series) >= 16))
    if not panels:
        return None
    figure = Figure("metric-vs-setting", _title(groups), "Each point: the last epoch's test "
                    "metric, mean over seeds; band ±1 std, fainter band the 95 % CI of the "
                    "mean; one line per value of the other settings.", panels)
    return save(figure, out, formats, draw_lines)


def energy_curves(groups: Sequence[Group], out: Destination,
                  formats: Sequence[str] = DEFAULT_FORMATS) -> Figure | None:
    """The Dirichlet energy of the node features against t along the solution, after the last
    epoch it was recorded, one line per model and setting (the over-smoothing curve of the
    GRAND++ chapter: features that become one vector have energy zero)."""
    series = []
    for group in groups:
        epochs = [[epoch for epoch in run["epochs"] if epoch.get("dirichlet_energy")]
                  for run in group.ok]
        last = [recorded[-1] for recorded in epochs if recorded]
        if last:
            times = curve_stats([epoch["energy_time"] for epoch in last])
            energies = curve_stats([epoch["dirichlet_energy"] for epoch in last], log=True)
            series.append(_log_series(group.label, [s.mean for s in times], energies))
    if not series:
        return None
    figure = Figure("energy", _title(groups), "Dirichlet energy ½Σ‖h_i − h_j‖² over the "
                    "graph's edges of the readout part at each t, after the last epoch it was "
                    "recorded; line: geometric mean over seeds, band: ±1 std of log10, fainter "
                    "band: 95 % CI of the mean log10 (a zero energy is left out).",
                    [Panel("Dirichlet energy along the solution", "t", "Dirichlet energy",
                           series, log_y=True)])
    return save(figure, out, formats, draw_lines)


#: Every figure kind, in the order a report shows them.
FIGURE_KINDS = (nfe_per_epoch, learning_curves, time_per_epoch, nfe_vs_tolerance,
                adjoint_decay, h_norm_growth, metric_vs_setting, energy_curves, densities,
                spiral_paths)


def draw_all(groups: Sequence[Group], out: Destination, prefix: str,
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
    ``dopri5, tol 1e-07, adjoint, batch full, lr 0.01, 300 epochs`` (no tolerance for
    fixed-step methods such as rk4, which do not use one)."""
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
    adaptive = [s for s in solver if uses_tolerance(s)]  # a fixed-step method has no tolerance
    if adaptive:
        rtol = values([s.get("rtol") for s in adaptive])
        atol = values([s.get("atol") for s in adaptive])
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
                             [_plus(s) for s in stats], [s.n for s in stats],
                             [s.low for s in stats], [s.high for s in stats]))
    return Panel(ylabel, "epoch", ylabel, series, log_y=log_y, integer_x=True)


def _epoch_figure(groups: Sequence[Group], out: Destination, formats: Sequence[str], name: str,
                  panels: list[Panel], caption: str) -> Figure | None:
    """A per-epoch figure, when some run has two epochs or more to draw a line through."""
    panels = [panel for panel in panels if panel.series]
    if not any(len(series.x) > 1 for panel in panels for series in panel.series):
        return None
    caption = (f"Line: mean over seeds; band: ±1 std across seeds; fainter band: the 95 % "
               f"confidence interval of the mean. {caption}")
    return save(Figure(name, _title(groups), caption, panels), out, formats, draw_lines)


def _log_series(label: str, x: list[float], log_stats: list[Stat]) -> Series:
    """A series from stats of log10 values: y the geometric mean, band ±1 std in log10, the
    confidence interval of the mean log10 raised back to powers of ten."""
    points = [(xi, s) for xi, s in zip(x, log_stats) if s.n]
    return Series(label, [xi for xi, _ in points], [10 ** s.mean for _, s in points],
                  [None if s.std is None else 10 ** (s.mean - s.std) for _, s in points],
                  [None if s.std is None else 10 ** (s.mean + s.std) for _, s in points],
                  [s.n for _, s in points],
                  [None if s.low is None else 10 ** s.low for _, s in points],
                  [None if s.high is None else 10 ** s.high for _, s in points])


def _minus(s: Stat) -> float | None:
    return None if s.std is None or s.mean is None else s.mean - s.std


def _plus(s: Stat) -> float | None:
    return None if s.std is None or s.mean is None else s.mean + s.std


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _metric(groups: Sequence[Group]) -> str:
    return groups[0].metric


def _tolerance(group: Group) -> float | None:
    rtols = {run.get("config", {}).get("solver", {}).get("rtol") for run in group.runs}
    return rtols.pop() if len(rtols) == 1 else None
