"""The fast integrator alone on a real workload: plane vibration's first training step (the
``authors-code`` profile, as ``benchmarks/eval_costs.py`` trains it) is run once with every
solve's start, span, norm and f's outputs recorded, then its solves are replayed with f
returning the recorded outputs in order — the same steps, accept/reject decisions and NFE, each
end state checked bit for bit against the recorded one — so that what is timed is the
integrator's own work (stage sums, error norm, step control, interpolation, what a solve makes
before its first step) on the real state sizes and step counts.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/integrator_replay.py --data-root DIR \\
        [--models node hbnode] [--repeats 15]

Prints per model the integrator's CPU µs per evaluation (``time.process_time`` over all of
the step's solves, forward and adjoint; best and median of the repeats). To compare two
versions of the code, run this against each in turn, or time both in one process.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time
from typing import Any, Callable

import torch

from eval_costs import one_step, trainer_for  # this folder's
from harness import data_root_or_default
from harness.solvers.fast import adjoint


def record(model: str, data_root: str) -> list[dict[str, Any]]:
    """Every fast solve of ``model``'s first training step: its integrate, arguments, f's
    outputs in order and end state."""
    solves: list[dict[str, Any]] = []
    original = adjoint.FlatProblem.__init__

    def init(self, func, z0, t0, t1, integrate, params) -> None:
        def run(f: Callable, y0: torch.Tensor, a: float, b: float, norm: Any, live: Any):
            outputs: list[torch.Tensor] = []

            def kept(t: Any, y: torch.Tensor) -> torch.Tensor:
                outputs.append(f(t, y).clone())
                return outputs[-1]
            end = integrate(kept, y0, a, b, norm, live)
            solves.append({"integrate": integrate, "args": (y0.clone(), a, b, norm, live),
                           "outputs": outputs, "end": end.clone()})
            return end
        original(self, func, z0, t0, t1, run, params)
    adjoint.FlatProblem.__init__ = init
    try:
        trainer = trainer_for(model, data_root)
        one_step(trainer, copy.deepcopy((trainer.built.model.state_dict(),
                                         trainer.built.optimizer.state_dict())))
    finally:
        adjoint.FlatProblem.__init__ = original
    return solves


def replay(solves: list[dict[str, Any]]) -> float:
    """CPU seconds of every solve again, f returning its recorded outputs; each end state is
    checked to be the recorded one."""
    seconds = 0.0
    for solve in solves:
        outputs = iter(solve["outputs"])
        start = time.process_time()
        end = solve["integrate"](lambda t, y: next(outputs), *solve["args"])
        seconds += time.process_time() - start
        if not torch.equal(end, solve["end"]) or next(outputs, None) is not None:
            raise AssertionError("a replayed solve took other steps than the recorded one")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--models", nargs="+", default=["node", "hbnode"])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data_root = str(data_root_or_default(args.data_root))
    for model in args.models:
        solves = record(model, data_root)
        nfe = sum(len(solve["outputs"]) for solve in solves)
        with torch.no_grad():
            replay(solves)  # warm up
            times = [replay(solves) / nfe * 1e6 for _ in range(args.repeats)]
        print(f"{model}: {len(solves)} solves, NFE {nfe}; integrator µs per evaluation: best "
              f"{min(times):.1f}, median {statistics.median(times):.1f}", flush=True)


if __name__ == "__main__":
    main()
