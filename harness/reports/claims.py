"""Claims files: a paper's claims as data, read and checked here and evaluated on result
records by :mod:`harness.reports.claim_verdicts`.

Claims are data: a YAML file (read with ``yaml.safe_load``) such as the one shipped for the
HBNODE paper, ``harness/reports/paper_claims/hbnode.yaml``::

    paper: Heavy Ball Neural ODEs (Xia et al., NeurIPS 2021)
    figures: {point_cloud: Fig. 4}            # optional: the paper's figure for a task
    claims:
      - id: point-cloud-nfe
        claim: HBNODE and GHBNODE need fewer NFEs than NODE, ANODE and SONODE
        source: §5.1, Fig. 4
        task: point_cloud                     # or tasks: [mnist, cifar10]
        checks:                               # the claim holds when every check holds
          - compare: {value: backward_nfe, lower: [hbnode, ghbnode], than: [node, anode, sonode]}
          - threshold: {value: accuracy, models: [node], below: 1.0}
          - trend: {value: forward_nfe, models: [node], direction: rises}
          - params: {counts: {node: 525, hbnode: 568}, tolerance: 0.01}
          - advantage_grows: {value: backward_nfe, lower: [hbnode], than: [node]}
          - stalls: {value: loss, above: 0.01, more: [anode], than: [hbnode]}
          - scaling: {value: backward_memory_bytes, over: solver.options.step_size,
                      models: [node], where: {solver.adjoint: [true]},
                      exponent: {min: -0.1, max: 0.1}}

A ``value`` is a per-epoch record field; each run gives one number from it (``at``: the mean
over epochs, or the first or last epoch that has it; default ``mean``, ``last`` for
``threshold``), and a model's number is the mean over its ok seeds.

- ``compare``: every model in ``lower`` (or ``higher``) is lower (higher) than every model in
  ``than``, each pair tested over seeds. With ``by: KEY`` (a configuration key such as
  ``task_options.dynamics``) the names are values of that key instead, compared within each
  model; ``where: {KEY: [values]}`` keeps only the runs whose configuration has one of them.
- ``stalls``: the seeds of every model in ``more`` (or ``fewer``) end with the value ``above``
  (or ``below``) the threshold more (less) often than those of every model in ``than``
  (``at`` defaults to ``last``).
- ``threshold``: every model's mean is ``below`` (or ``above``) the number.
- ``trend``: every model's value ``rises`` (or ``falls``) with the epoch, tested over seeds.
- ``params``: every model's ok runs have a parameter count within ``tolerance`` (relative,
  default 0.01) of the count given.
- ``advantage_grows``: the ratio of the ``than`` models' value to the ``lower`` models' grows
  as the tolerance (``solver.rtol``) decreases, tested over seeds.
- ``scaling``: every model's value grows with the configuration key ``over`` as ``over^k``
  with k within ``exponent: {min, max}`` (either bound may be left out), k the least-squares
  slope of log value against log ``over`` (:mod:`harness.reports.claim_scaling`); ``where`` as
  for ``compare``.

``threshold``, ``params`` and ``scaling`` are decided on the numbers; the others by tests over seeds
(:mod:`harness.reports.claim_checks`). How each verdict is made — the tests, the corrections,
failed runs, settings that differ: docs/claims.md and :mod:`harness.reports.claim_verdicts`.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from harness.reports.aggregate import AT_CHOICES
from harness.suites.validation import (Invalid, Problems, choice, fraction, join, mapping, number,
                                       read_yaml, string, top_level)

#: The claims of the HBNODE paper, shipped in the package.
PAPER_CLAIMS = "hbnode.yaml"
#: The name of a results directory's own claims file (a suite's, copied by ``harness run``).
RESULTS_CLAIMS = "claims.yaml"
#: Beside a suite file ``x.yaml``, its claims file is ``x.claims.yaml``.
SUITE_CLAIMS_SUFFIX = ".claims.yaml"

_TOP_KEYS = ("paper", "figures", "claims")
_CLAIM_KEYS = ("id", "claim", "source", "task", "tasks", "checks", "note")
_CHECK_KEYS: dict[str, dict[str, tuple[str, ...]]] = {
    # kind: {"required": …, "optional": …}
    "compare": {"required": ("value", "than"), "optional": ("at", "lower", "higher", "by", "where")},
    "threshold": {"required": ("value", "models"), "optional": ("at", "below", "above")},
    "trend": {"required": ("value", "models", "direction"), "optional": ()},
    "params": {"required": ("counts",), "optional": ("tolerance",)},
    "advantage_grows": {"required": ("value", "lower", "than"), "optional": ("at",)},
    "stalls": {"required": ("value", "than"), "optional": ("at", "above", "below", "more",
                                                           "fewer")},
    "scaling": {"required": ("value", "over", "models", "exponent"),
                "optional": ("at", "where")},
}


class ClaimsError(ValueError):
    """A claims file that cannot be used; the message lists every problem, one per line."""


@dataclass
class Check:
    """One check of a claim: its kind and its (validated) options."""

    kind: str
    options: dict[str, Any]

    def describe(self) -> str:
        """The check in words, e.g. ``backward_nfe (mean over epochs): hbnode < node``."""
        o = self.options
        value = f"{o.get('value')} ({_AT_WORDS[o.get('at', 'mean')]})" if "value" in o else ""
        if self.kind == "compare":
            side, sign = ("lower", "<") if "lower" in o else ("higher", ">")
            by = f"{o['by']} " if "by" in o else ""
            return f"{value}: {by}{_names(o[side])} {sign} {_names(o['than'])}{_where_words(o)}"
        if self.kind == "threshold":
            bound, sign = ("below", "<") if "below" in o else ("above", ">")
            return f"{value}: {_names(o['models'])} {sign} {o[bound]:g}"
        if self.kind == "trend":
            return f"{o['value']} {o['direction']} with the epoch for {_names(o['models'])}"
        if self.kind == "stalls":
            side = "more" if "more" in o else "fewer"
            bound, sign = ("above", ">") if "above" in o else ("below", "<")
            return (f"seeds with {value} {sign} {o[bound]:g}: {_names(o[side])} {side} often "
                    f"than {_names(o['than'])}")
        if self.kind == "scaling":
            bounds, where = o["exponent"], _where_words(o)
            return (f"{value} ∝ {o['over']}^k for {_names(o['models'])}, k in "
                    f"[{bounds.get('min', '-∞')}, {bounds.get('max', '∞')}]{where}")
        if self.kind == "params":
            return (f"parameter counts within {o['tolerance']:.0%} of "
                    + ", ".join(f"{m} {c:,}" for m, c in o["counts"].items()))
        return (f"{value}: {_names(o['than'])} / {_names(o['lower'])} grows as the tolerance "
                f"decreases")


@dataclass
class Claim:
    """A claim of a paper about one or more tasks, and the checks that test it."""

    id: str
    claim: str
    source: str
    tasks: list[str]
    checks: list[Check]
    note: str = ""


@dataclass
class ClaimsFile:
    """The claims of one file, with the paper they come from and its figures per task."""

    path: Path
    paper: str
    figures: dict[str, str]
    claims: list[Claim]


# --- reading -----------------------------------------------------------------------------------


def paper_claims_path() -> Path:
    """The shipped claims file of the HBNODE paper."""
    return Path(str(resources.files("harness.reports") / "paper_claims" / PAPER_CLAIMS))


def suite_claims_path(suite: Path) -> Path:
    """Where a suite file's own claims live: ``x.yaml`` → ``x.claims.yaml`` beside it."""
    return suite.parent / f"{suite.stem}{SUITE_CLAIMS_SUFFIX}"


def checked_suite_claims(suite: Path) -> bytes | None:
    """The suite's claims file, if it has one, checked: what ``harness run`` writes into the
    results directory as ``claims.yaml`` (where ``harness report`` finds it)."""
    source = suite_claims_path(Path(suite))
    if not source.is_file():
        return None
    content = source.read_bytes()
    load_claims(source)
    return content


def load_claims(path: str | Path) -> ClaimsFile:
    """Read and check a claims file; :class:`ClaimsError` lists every problem found."""
    path = Path(path)
    report = Problems(str(path))
    document = top_level(read_yaml(path, ClaimsError, "a claims YAML file"), path, ClaimsError,
                         _TOP_KEYS, report)
    paper = report.check("paper", string, document.get("paper", "")) or ""
    figures = mapping(document.get("figures", {}), "figures", report, "task: figure name")
    for task, figure in figures.items():
        report.check(join("figures", task), string, figure)
    raw_claims = document.get("claims")
    if not isinstance(raw_claims, list) or not raw_claims:
        report.add("claims", f"{raw_claims!r} is not a list of claims",
                   "valid: a non-empty list of mappings with keys id, claim, task, checks")
        raw_claims = []
    claims, ids = [], set()
    for index, raw in enumerate(raw_claims):
        claim = _read_claim(raw, f"claims[{index}]", report)
        if claim is None:
            continue
        if claim.id in ids:
            report.add(f"claims[{index}].id", f"{claim.id!r} is used twice",
                       "valid: an id unique in the file")
        ids.add(claim.id)
        claims.append(claim)
    report.raise_if_any(ClaimsError)
    return ClaimsFile(path, paper, {str(k): str(v) for k, v in figures.items()}, claims)


def _read_claim(raw: Any, at: str, report: Problems) -> Claim | None:
    raw = mapping(raw, at, report, "a mapping with keys id, claim, task, checks")
    if not raw:
        return None
    for key in raw:
        if key not in _CLAIM_KEYS:
            report.unknown(join(at, key), f"unknown key {key!r}", key, _CLAIM_KEYS)
    texts = {key: report.check(join(at, key), string, raw.get(key, ""))
             for key in ("id", "claim", "source", "note")}
    for key in ("id", "claim"):
        if not texts[key]:
            report.add(join(at, key), "missing", "valid: a non-empty string")
    if ("task" in raw) == ("tasks" in raw):
        report.add(at, "needs exactly one of task, tasks", "valid: task: NAME or tasks: [NAMES]")
        tasks: list[str] = []
    elif "task" in raw:
        tasks = [report.check(join(at, "task"), string, raw["task"])]
    else:
        tasks = report.check(join(at, "tasks"), _names_list, raw["tasks"]) or []
    raw_checks = raw.get("checks")
    if not isinstance(raw_checks, list) or not raw_checks:
        report.add(join(at, "checks"), f"{raw_checks!r} is not a list of checks",
                   f"valid: a non-empty list of one-key mappings ({', '.join(_CHECK_KEYS)})")
        raw_checks = []
    checks = [_read_check(item, f"{at}.checks[{index}]", report)
              for index, item in enumerate(raw_checks)]
    if None in checks or None in tasks or not all(texts[key] is not None for key in texts):
        return None
    return Claim(texts["id"], texts["claim"], texts["source"] or "", tasks,
                 [check for check in checks if check is not None], texts["note"] or "")


def _read_check(raw: Any, at: str, report: Problems) -> Check | None:
    if not isinstance(raw, dict) or len(raw) != 1:
        report.add(at, f"{raw!r} is not a one-key mapping",
                   f"valid: one of {', '.join(_CHECK_KEYS)} with its options")
        return None
    kind, options = next(iter(raw.items()))
    if kind not in _CHECK_KEYS:
        report.unknown(at, f"unknown check {kind!r}", kind, _CHECK_KEYS)
        return None
    at = join(at, kind)
    options = mapping(options, at, report, "the check's options")
    keys = _CHECK_KEYS[kind]
    before = len(report.lines)
    for key in options:
        if key not in (*keys["required"], *keys["optional"]):
            report.unknown(join(at, key), f"unknown key {key!r}", key,
                           (*keys["required"], *keys["optional"]))
    for key in keys["required"]:
        if key not in options:
            report.add(join(at, key), "missing", f"valid: {_VALID[key]}")
    checked = {key: report.check(join(at, key), _CHECKERS[key], value)
               for key, value in options.items() if key in _CHECKERS}
    for sides in _SIDES.get(kind, ()):
        if sum(side in options for side in sides) != 1:
            report.add(at, f"needs exactly one of {' or '.join(sides)}",
                       f"valid: {sides[0]}: … or {sides[1]}: …")
    if kind == "params":
        checked.setdefault("tolerance", 0.01)
    if kind in ("threshold", "stalls"):
        checked.setdefault("at", "last")
    if len(report.lines) > before:
        return None
    return Check(kind, checked)


def _names_list(value: Any) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise Invalid(f"{value!r} is not a list of names", "valid: a non-empty list of names")
    return value


def _where(value: Any) -> dict[str, list[Any]]:
    valid = "valid: a mapping of configuration key (task_options.end_time) to a list of values"
    if not isinstance(value, dict) or not value or not all(
            isinstance(k, str) and isinstance(v, list) and v for k, v in value.items()):
        raise Invalid(f"{value!r} is not a mapping of key to values", valid)
    return value


def _exponent(value: Any) -> dict[str, float]:
    valid = "valid: a mapping with min and/or max, numbers (min ≤ max)"
    if not isinstance(value, dict) or not value or set(value) - {"min", "max"}:
        raise Invalid(f"{value!r} is not bounds on an exponent", valid)
    bounds = {key: number(bound, valid) for key, bound in value.items()}
    if bounds.get("min", -math.inf) > bounds.get("max", math.inf):
        raise Invalid(f"{value!r}: min is above max", valid)
    return bounds


def _counts(value: Any) -> dict[str, int]:
    valid = "valid: a mapping model: parameter count (an integer > 0)"
    if not isinstance(value, dict) or not value:
        raise Invalid(f"{value!r} is not a mapping", valid)
    for model, count in value.items():
        if not isinstance(model, str) or isinstance(count, bool) or not isinstance(count, int) \
                or count <= 0:
            raise Invalid(f"{model!r}: {count!r} is not a parameter count", valid)
    return value


#: Per check kind, the keys of which it needs exactly one.
_SIDES = {"compare": (("lower", "higher"),), "threshold": (("below", "above"),),
          "stalls": (("more", "fewer"), ("above", "below"))}
_CHECKERS: dict[str, Callable[[Any], Any]] = {
    "value": string, "at": choice(AT_CHOICES, "a way to take one number per run"),
    "lower": _names_list, "higher": _names_list, "than": _names_list, "models": _names_list,
    "more": _names_list, "fewer": _names_list,
    "below": number, "above": number, "direction": choice(("rises", "falls"), "a direction"),
    "counts": _counts, "tolerance": fraction, "by": string, "where": _where,
    "over": string, "exponent": _exponent,
}
_VALID = {"value": "a per-epoch record field, e.g. backward_nfe", "than": "a list of models",
          "models": "a list of models", "direction": "rises or falls",
          "counts": "a mapping model: parameter count", "lower": "a list of models",
          "over": "a configuration key, e.g. solver.options.step_size",
          "exponent": "bounds {min: …, max: …} on the exponent"}
_AT_WORDS = {"mean": "mean over epochs", "first": "first epoch", "last": "last epoch"}


def models_of(check: Check) -> list[str]:
    """Every model the check names, in order (a model may appear twice)."""
    o = check.options
    return [*o.get("lower", []), *o.get("higher", []), *o.get("more", []), *o.get("fewer", []),
            *o.get("than", []), *o.get("models", []), *o.get("counts", {})]


def _where_words(options: dict[str, Any]) -> str:
    return "".join(f"; where {key} in {values}" for key, values in options.get("where", {}).items())


def _names(models: Sequence[str]) -> str:
    return models[0] if len(models) == 1 else "{" + ", ".join(models) + "}"

