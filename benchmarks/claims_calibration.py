"""How often each claim verdict is wrong, by simulation: every check kind decided over seeds
(compare, advantage_grows, trend, stalls) on records drawn with a known truth.

    python benchmarks/claims_calibration.py [--replicates 400] [--seeds 3 5 10 30]
                                            [--kinds compare advantage_grows trend stalls]
                                            [--resamples 999] [--rng 0]

For each kind, data type and number of seeds it draws ``--replicates`` sets of records under
the null (no difference, no growth, no trend, equal stall rates) and as many under a stated
alternative, has :func:`harness.reports.claim_verdicts.evaluate` decide a one-check claim on
each, and prints the false-holds and false-refuted rates under the null — each at most the
nominal 2.5 % (one side of a two-sided test at α = 0.05), within the Monte Carlo error printed
— and the power (holds) under the alternative. Data types: ``continuous`` (normal) and
``integer`` (the same rounded to whole numbers, as NFE are: many ties, often no spread at all).
Permutation tests too large to enumerate draw ``--resamples`` random splits (the report
draws 9,999; any number gives a valid test, fewer are faster). docs/claims.md shows a run.
"""
from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness.reports.claim_results import HOLDS, REFUTED
from harness.reports.claim_verdicts import evaluate
from harness.reports.claims import ClaimsFile, load_claims

#: The one check each kind is calibrated on.
CHECKS = {
    "compare": "compare: {value: backward_nfe, lower: [hbnode], than: [node]}",
    "advantage_grows": "advantage_grows: {value: backward_nfe, lower: [hbnode], than: [node]}",
    "trend": "trend: {value: forward_nfe, models: [node], direction: rises}",
    "stalls": "stalls: {value: loss, above: 0.01, more: [anode], than: [hbnode]}",
}
#: The alternative each kind's power is measured at, in words.
EFFECTS = {
    "compare": "node's NFE 1 SD (2 NFE) above hbnode's",
    "advantage_grows": "node / hbnode grows by 0.02 per decade of tolerance (1e-2 … 1e-5)",
    "trend": "NFE rise by 0.3 per epoch over 5 epochs (noise SD 2 per epoch)",
    "stalls": "anode stalls in 60 % of seeds, hbnode in 10 % (null: 30 % each)",
}
TOLERANCES = (1e-2, 1e-3, 1e-4, 1e-5)
NOMINAL = 0.025


def run(model: str, seed: int, epochs: list[dict[str, float]], tol: float = 1e-3) -> dict:
    """A result record with what grouping and the checks read."""
    return {"key": f"{model}/{seed}/{tol}", "suite": "sim", "task": "pc", "model": model,
            "seed": seed, "status": "ok", "failure_kind": None,
            "config": {"task": "pc", "model": model, "seed": seed, "epochs": len(epochs),
                       "solver": {"method": "dopri5", "rtol": tol, "atol": tol}},
            "epochs": [{"epoch": i + 1, **values} for i, values in enumerate(epochs)]}


def nfe(values: np.ndarray, integer: bool) -> np.ndarray:
    return np.maximum(np.round(values), 1.0) if integer else values


def compare(rng: np.random.Generator, seeds: int, integer: bool, effect: bool) -> list[dict]:
    """hbnode and node NFE ~ N(20, 2) per seed; node 2 NFE higher under the alternative."""
    records = []
    for model, shift in (("hbnode", 0.0), ("node", 2.0 if effect else 0.0)):
        values = nfe(rng.normal(20.0 + shift, 2.0, seeds), integer)
        records += [run(model, s, [{"backward_nfe": float(v)}]) for s, v in enumerate(values)]
    return records


def advantage(rng: np.random.Generator, seeds: int, integer: bool, effect: bool) -> list[dict]:
    """NFE = 20 · 1.5^k (k decades below 1e-2) · a seed's own factor (shared by its runs at
    every tolerance, sd 10 %) · noise (5 %); node's also · (1 + 0.02 k) under the alternative."""
    records = []
    for model in ("hbnode", "node"):
        own = rng.normal(0.0, 0.1, seeds)
        for k, tol in enumerate(TOLERANCES):
            grow = 1 + 0.02 * k if effect and model == "node" else 1.0
            values = nfe(20 * 1.5 ** k * grow * np.exp(own + rng.normal(0.0, 0.05, seeds)),
                         integer)
            records += [run(model, s, [{"backward_nfe": float(v)}], tol)
                        for s, v in enumerate(values)]
    return records


def trend(rng: np.random.Generator, seeds: int, integer: bool, effect: bool) -> list[dict]:
    """node's NFE over 5 epochs: a seed's own level (sd 2) + slope·epoch + noise (sd 2)."""
    records = []
    slope = 0.3 if effect else 0.0
    for s in range(seeds):
        level = 20 + rng.normal(0.0, 2.0)
        values = nfe(level + slope * np.arange(5) + rng.normal(0.0, 2.0, 5), integer)
        records.append(run("node", s, [{"forward_nfe": float(v)} for v in values]))
    return records


def stalls(rng: np.random.Generator, seeds: int, integer: bool, effect: bool) -> list[dict]:
    """Final losses: a stalled seed's ~ U(0.05, 1), the others' ~ 1e-4; ``integer`` rounds
    them to 2 decimals (ties change nothing: a seed stalls or not)."""
    records = []
    for model, rate in (("anode", 0.6 if effect else 0.3), ("hbnode", 0.1 if effect else 0.3)):
        stuck = rng.random(seeds) < rate
        losses = np.where(stuck, rng.uniform(0.05, 1.0, seeds), 1e-4)
        if integer:
            losses = np.round(losses, 2)
        records += [run(model, s, [{"loss": 1.0}, {"loss": float(v)}])
                    for s, v in enumerate(losses)]
    return records


SIMULATIONS: dict[str, Callable[[np.random.Generator, int, bool, bool], list[dict]]] = {
    "compare": compare, "advantage_grows": advantage, "trend": trend, "stalls": stalls}


def claims_file(kind: str, directory: Path) -> ClaimsFile:
    path = directory / f"{kind}.yaml"
    path.write_text(f"claims:\n  - id: {kind}\n    claim: simulated\n    task: pc\n"
                    f"    checks:\n      - {CHECKS[kind]}\n")
    return load_claims(path)


def rates(kind: str, claims: ClaimsFile, seeds: int, integer: bool, effect: bool,
          replicates: int, resamples: int, rng: np.random.Generator) -> dict[str, float]:
    """The share of replicates that hold and that are refuted."""
    counts = {HOLDS: 0, REFUTED: 0}
    for _ in range(replicates):
        records = SIMULATIONS[kind](rng, seeds, integer, effect)
        [result] = evaluate(claims, records, resamples=resamples)
        if result.verdict in counts:
            counts[result.verdict] += 1
    return {verdict: count / replicates for verdict, count in counts.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicates", type=int, default=400)
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 5, 10, 30])
    parser.add_argument("--kinds", nargs="+", default=list(CHECKS), choices=list(CHECKS))
    parser.add_argument("--resamples", type=int, default=999)
    parser.add_argument("--rng", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.rng)
    error = math.sqrt(NOMINAL * (1 - NOMINAL) / args.replicates)
    print(f"{args.replicates} replicates per cell; nominal 2.5 % for each false verdict, Monte "
          f"Carlo standard error ±{error:.1%} (2 SE: up to {NOMINAL + 2 * error:.1%})")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as directory:
        for kind in args.kinds:
            claims = claims_file(kind, Path(directory))
            print(f"\n{kind} — power at: {EFFECTS[kind]}")
            print("| data | seeds | false holds | false refuted | power (holds) |")
            print("|---|---|---|---|---|")
            for integer in (False, True):
                for seeds in args.seeds:
                    null = rates(kind, claims, seeds, integer, False, args.replicates,
                                 args.resamples, rng)
                    alternative = rates(kind, claims, seeds, integer, True, args.replicates,
                                        args.resamples, rng)
                    print(f"| {'integer' if integer else 'continuous'} | {seeds} | "
                          f"{null[HOLDS]:.1%} | {null[REFUTED]:.1%} | "
                          f"{alternative[HOLDS]:.1%} |", flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
