"""Claims tests' helpers: a one-claim claims file around some checks, evaluated on planted
records (:mod:`tests.result_records`) with one number per seed."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.reports.claim_verdicts import ClaimResult, evaluate
from harness.reports.claims import load_claims
from tests.result_records import curve_run, record


def claims_file(directory: Path, checks: str, task: str = "pc") -> Path:
    """A claims file with one claim ``c`` on ``task`` whose checks are the YAML lines given."""
    path = directory / "claims.yaml"
    path.write_text(f"paper: Test paper\nclaims:\n  - id: c\n    claim: a claim\n"
                    f"    task: {task}\n    checks:\n{checks}")
    return path


def judge(directory: Path, checks: str, records: list) -> ClaimResult:
    """The claim's result on the records."""
    [result] = evaluate(load_claims(claims_file(directory, checks)), records)
    return result


def verdict(directory: Path, checks: str, records: list) -> tuple[str, list[str]]:
    """The claim's verdict and every line of its checks' evidence."""
    result = judge(directory, checks, records)
    return result.verdict, [line for check in result.checks for line in check.evidence]


def curves(model: str, values: list[float], seeds=(0,), **options: Any) -> list:
    """One run per seed whose backward and forward NFE per epoch are ``values``."""
    return [curve_run("pc", model, seed, {"backward_nfe": values, "forward_nfe": values},
                      **options) for seed in seeds]


def seeds(model: str, values: list[float], first: int = 0, **options: Any) -> list:
    """One single-epoch run per value: seed ``first + i`` has backward and forward NFE
    ``values[i]``."""
    return [run for seed, value in enumerate(values, first)
            for run in curves(model, [value], seeds=(seed,), **options)]


def failed(model: str, count: int, kind: str = "solver", first: int = 0, epochs: int = 1,
           **options: Any) -> list:
    """``count`` failed runs (seeds ``first``, …) of the failure kind given (``nfe_cap``: the
    solver's NFE cap), planned for ``epochs`` epochs."""
    runs = [record("pc", model, seed, [], status="failed", **options)
            for seed in range(first, first + count)]
    for run in runs:
        run["failure_kind"] = kind
        run["config"]["epochs"] = epochs  # as planned, like the ok runs beside them
    return runs
