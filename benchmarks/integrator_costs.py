"""The fast backend's integrators alone: CPU time of a solve on a near-free field, so that what
is measured is the integrator's own cost per step (stage sums, step control, buffers).

dopri5 at tol 1e-7 over [0, 2] on f(t, y) = −y, no graph (as in the adjoint's solves), one
thread, ``time.process_time`` per solve, best of ``--repeats``: the solo integrator on flat
states of 480 and 11,000 entries (float32) and 480 (float64), and the members' integrator on
1 and 100 rows of 480. To compare two versions of the code, alternate runs of this script
against each (the load here moves more between minutes than between paired runs).

    nice -n 10 python benchmarks/integrator_costs.py --repeats 60
"""
from __future__ import annotations

import argparse
import time
from typing import Callable

import numpy as np
import torch

from harness.solvers.fast.integrators import StepControl, integrator, rms_norm
from harness.solvers.fast.members import adaptive_members, rms_rows
from harness.solvers.fast.tableaux import TABLEAUX
from harness.solvers.members import Running

CONTROL = StepControl(rtol=1e-7, atol=1e-7)


def solo(size: int, dtype: torch.dtype) -> Callable[[], object]:
    y0 = torch.linspace(0.5, 1.5, size, dtype=dtype)
    integrate = integrator("dopri5", CONTROL.rtol, CONTROL.atol, {})  # its workspace kept
    return lambda: integrate(lambda t, y: y.neg(), y0, 0.0, 2.0, rms_norm, None)


def members(rows: int, width: int) -> Callable[[], object]:
    y0 = torch.linspace(0.5, 1.5, rows * width).view(rows, width)
    return lambda: adaptive_members(lambda t, y, running: y.neg(), y0, 0.0, 2.0,
                                    TABLEAUX["dopri5"], CONTROL, rms_rows, None,
                                    Running(np.ones(rows, dtype=bool)))


CASES = {"solo 480 float32": solo(480, torch.float32),
         "solo 11000 float32": solo(11000, torch.float32),
         "solo 480 float64": solo(480, torch.float64),
         "members 1x480 float32": members(1, 480),
         "members 100x480 float32": members(100, 480)}


def best_ms(solve: Callable[[], object], repeats: int) -> float:
    """The least CPU time of ``repeats`` solves, in ms (one warm-up solve first)."""
    solve()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        solve()
        times.append(time.process_time() - start)
    return 1e3 * min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    torch.set_num_threads(1)
    with torch.no_grad():
        for name in args.cases:
            print(f"{name}: {best_ms(CASES[name], args.repeats):.3f} ms", flush=True)


if __name__ == "__main__":
    main()
