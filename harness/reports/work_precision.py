"""Work–precision: for a pure-solve study (runs with ``epochs: 0``, such as ``suites/stiff.yaml``)
the final error against NFE and against time, one curve per solver (the dissertation's
Fig. 5.3), and the checks of chapter 5's claims on those curves.

A curve is a solver (its backend and method); its points are the runs of the section, one per
tolerance or inner tolerance, at the record's evaluation NFE, evaluation time and test metric.
The chapter's claims are data, ``paper_claims/proximal.yaml`` (the claims format of
:mod:`harness.reports.claims`, with two check kinds of its own that compare solvers rather than
models):

- ``fewer_nfe_at_matched_error: {lower: [...], than: [...]}``: for every point p of a solver
  in ``lower`` and every solver in ``than``, the cheapest point of that solver reaching p's error
  or less takes more NFE than p (points no point of the other reaches are compared with its most
  accurate point only when that one also takes more NFE: then p beats it on both counts);
  at least one comparison must be made.
- ``nfe_flat: {solvers: [...], max_ratio: r}``: each solver's largest NFE over its points is
  at most r times its smallest, while its errors span at least a factor 10.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure as MplFigure

from harness.reports.aggregate import Group
from harness.reports.drawing import DEFAULT_FORMATS, Figure, Panel, write
from harness.running.safe_files import Destination
from harness.suites.validation import Problems, mapping, read_yaml, top_level

#: Chapter 5's claims, shipped in the package.
CLAIMS_FILE = "proximal.yaml"
_CHECK_KINDS = {"fewer_nfe_at_matched_error": ("lower", "than"), "nfe_flat": ("solvers", "max_ratio")}
_SYMBOL = {True: "✓", False: "✗", None: "not run"}


class WorkPrecisionError(ValueError):
    """A chapter 5 claims file that cannot be used; one problem per line."""


@dataclass(frozen=True)
class Point:
    """One solve: its solver, what it cost and how far it ended from the exact solution."""

    solver: str
    nfe: float
    time_s: float
    error: float


@dataclass(frozen=True)
class SolverClaim:
    id: str
    claim: str
    source: str
    checks: tuple[tuple[str, dict[str, Any]], ...]


def solver_label(solver: dict[str, Any]) -> str:
    """``dopri5`` for the torchdiffeq-stepping backends, ``proximal bdf2`` for the others."""
    backend = solver.get("backend", "torchdiffeq")
    method = solver.get("method", "?")
    return method if backend in ("torchdiffeq", "fast") else f"{backend} {method}"


def points(groups: Sequence[Group]) -> dict[str, list[Point]]:
    """The section's pure-solve runs by solver, each list sorted by NFE."""
    curves: dict[str, list[Point]] = {}
    for group in groups:
        for run in group.ok:
            config, epochs = run.get("config", {}), run.get("epochs") or []
            if config.get("epochs") != 0 or not epochs:
                continue
            epoch = epochs[0]
            error = epoch.get(f"test_{run.get('metric', 'error')}")
            if error is None or epoch.get("eval_nfe") is None:
                continue
            label = solver_label(config.get("solver", {}))
            curves.setdefault(label, []).append(
                Point(label, epoch["eval_nfe"], epoch["eval_time_s"], error))
    return {label: sorted(found, key=lambda p: p.nfe) for label, found in sorted(curves.items())}


def draw(groups: Sequence[Group], out: Destination,
         formats: Sequence[str] = DEFAULT_FORMATS) -> list[Figure]:
    """The work–precision figure when the section compares two or more solvers in pure
    solves, its caption holding chapter 5's claims checked on it; else none."""
    curves = points(groups)
    if len(curves) < 2:
        return []
    metric = next((run.get("metric") for group in groups for run in group.ok), "error")
    verdicts = check_claims(load_claims(), curves)
    caption = (f"Final {metric} against the NFE and the time of one solve, one point per "
               f"tolerance, one curve per solver (the dissertation's Fig. 5.3). "
               f"Chapter 5's claims: " + "; ".join(verdicts) + ".")
    panels = [Panel(f"test {metric} against NFE", "NFE", f"test {metric}", [], True, True),
              Panel(f"test {metric} against time", "time of the solve (s)", f"test {metric}", [],
                    True, True)]
    figure = Figure("work_precision", f"{groups[0].task} — work–precision", caption, panels)
    return [_save(figure, curves, out, formats)]


def _save(figure: Figure, curves: dict[str, list[Point]], out: Destination,
          formats: Sequence[str]) -> Figure:
    canvas = MplFigure(figsize=(11.0, 4.4), dpi=100, layout="constrained")
    for ax, (panel, x) in zip(canvas.subplots(1, 2), zip(figure.panels, ("nfe", "time_s"))):
        for label, found in curves.items():
            style = "-o" if label.startswith("proximal") else "--s"
            ax.plot([getattr(p, x) for p in found], [p.error for p in found], style,
                    label=label, markersize=4)
        ax.set(xscale="log", yscale="log", xlabel=panel.xlabel, ylabel=panel.ylabel,
               title=panel.title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    canvas.suptitle(figure.title, fontsize=10)
    return write(figure, canvas, out, formats)


# --- chapter 5's claims -----------------------------------------------------------------------


def claims_path() -> Path:
    return Path(str(resources.files("harness.reports") / "paper_claims" / CLAIMS_FILE))


def load_claims(path: Path | None = None) -> list[SolverClaim]:
    """The claims of ``path`` (default: the shipped chapter 5 file), checked."""
    path = path or claims_path()
    report = Problems(str(path))
    document = top_level(read_yaml(path, WorkPrecisionError, "a claims YAML file"), path,
                         WorkPrecisionError, ("paper", "figures", "claims"), report)
    claims = []
    for index, raw in enumerate(document.get("claims") or []):
        at = f"claims[{index}]"
        raw = mapping(raw, at, report, "a mapping with id, claim, source, task, checks")
        checks = []
        for number, item in enumerate(raw.get("checks") or []):
            where = f"{at}.checks[{number}]"
            item = mapping(item, where, report, f"a mapping of one of {', '.join(_CHECK_KINDS)}")
            for kind, options in item.items():
                if kind not in _CHECK_KINDS:
                    report.unknown(where, f"unknown check {kind!r}", kind, _CHECK_KINDS)
                    continue
                options = mapping(options, f"{where}.{kind}", report, "a mapping of options")
                missing = [key for key in _CHECK_KINDS[kind] if key not in options]
                if missing:
                    report.add(f"{where}.{kind}", f"missing {', '.join(missing)}",
                               f"valid: {', '.join(_CHECK_KINDS[kind])}")
                checks.append((kind, options))
        claims.append(SolverClaim(str(raw.get("id")), str(raw.get("claim")),
                                  str(raw.get("source", "")), tuple(checks)))
    report.raise_if_any(WorkPrecisionError)
    return claims


def check_claims(claims: Sequence[SolverClaim], curves: dict[str, list[Point]]) -> list[str]:
    """One line per claim: its verdict symbol, id and what was compared."""
    lines = []
    for claim in claims:
        results = [_CHECKS[kind](curves, **options) for kind, options in claim.checks]
        verdict: bool | None = (False if any(ok is False for ok, _ in results)
                                else None if any(ok is None for ok, _ in results) else True)
        lines.append(f"{_SYMBOL[verdict]} {claim.id} ({'; '.join(why for _, why in results)})")
    return lines


def _fewer_nfe(curves: dict[str, list[Point]], lower: list[str],
               than: list[str]) -> tuple[bool | None, str]:
    compared = beaten = 0
    worst = ""
    for cheap in (p for name in lower for p in curves.get(name, [])):
        for name in than:
            other = curves.get(name, [])
            reaching = [q for q in other if q.error <= cheap.error]
            if reaching:
                rival = min(reaching, key=lambda q: q.nfe)
            elif other and min(other, key=lambda q: q.error).nfe > cheap.nfe:
                rival = min(other, key=lambda q: q.error)
            else:
                continue
            compared += 1
            if rival.nfe > cheap.nfe:
                beaten += 1
            elif not worst:
                worst = (f"{cheap.solver} at error {cheap.error:.2g} takes {cheap.nfe:.0f} NFE, "
                         f"{rival.solver} {rival.nfe:.0f}")
    if not compared:
        return None, "no points to compare"
    return beaten == compared, f"fewer NFE in {beaten} of {compared} comparisons" + (
        f", e.g. {worst}" if worst else "")


def _nfe_flat(curves: dict[str, list[Point]], solvers: list[str],
              max_ratio: float) -> tuple[bool | None, str]:
    parts, holds = [], True
    for name in solvers:
        found = curves.get(name, [])
        if len(found) < 2:
            return None, f"{name}: fewer than two points"
        ratio = max(p.nfe for p in found) / min(p.nfe for p in found)
        span = max(p.error for p in found) / min(p.error for p in found)
        holds = holds and ratio <= max_ratio and span >= 10
        parts.append(f"{name} NFE ×{ratio:.2f} over errors ×{span:.2g}")
    return holds, ", ".join(parts) + f" (at most ×{max_ratio:g} allowed)"


_CHECKS = {"fewer_nfe_at_matched_error": _fewer_nfe, "nfe_flat": _nfe_flat}
