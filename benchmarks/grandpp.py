"""One run of suites/grandpp-cpu.yaml's settings before and after its speed-ups: CPU and wall time.

    python benchmarks/grandpp.py [--end-time 32] [--dynamics grand++-l] [--rounds 2]

"before": GRAND-l's attention and the source term recomputed at every call of the field (the
solve the task had, patched in) and an evaluation after every epoch; "after": the task as it is
(computed once per solve) and the suite's ``eval_every: 8``. NODE, 300-node CSBM, 5 labels per
class, 8 epochs, dopri5 at tol 1e-3 without the adjoint, seed 0, one thread. Each prints its CPU
time (``time.process_time``: less moved by other jobs on shared cores than the wall time), its
wall time, and the test accuracy, energy at T and forward NFE, which must agree.
"""
from __future__ import annotations

import argparse
import time
from unittest.mock import patch

import torch

from harness.plugins import load_registry
from harness.running.runner import execute_run
from harness.suites.runspec import RunSpec, default_settings
from harness.toolkit import solve_with_input
from harness_plugins.tasks.graph_diffusion import DiffusionClassifier


def spec(end_time: float, dynamics: str, eval_every: int) -> RunSpec:
    """The suite's run at this T and dynamics, evaluated every ``eval_every`` epochs."""
    settings = default_settings()
    settings.update({"epochs": 8, "lr": 0.02, "eval_every": eval_every,
                     "task_options": {"nodes": 300, "train_per_class": 5, "split": "random",
                                      "end_time": end_time, "dynamics": dynamics,
                                      "energy_epochs": [8]}})
    settings["solver"].update({"method": "dopri5", "rtol": 1e-3, "atol": 1e-3, "adjoint": False})
    return RunSpec.from_settings("grandpp-benchmark", "graph_sbm", "node", 0, settings)


def recomputing(self: DiffusionClassifier, x: torch.Tensor, z0: torch.Tensor,
                duration: torch.Tensor | None = None) -> torch.Tensor:
    """The task's former solve: the field fed the raw input, recomputing X₀'s coefficients."""
    return solve_with_input(self.ode, lambda t: x, z0, duration)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--end-time", type=float, default=32.0)
    parser.add_argument("--dynamics", default="grand++-l")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    registry = load_registry()
    for _ in range(args.rounds):
        for name, eval_every, solve in (("before", 1, recomputing),
                                        ("after", 8, DiffusionClassifier.solve)):
            cpu, wall = time.process_time(), time.perf_counter()
            with patch.object(DiffusionClassifier, "solve", solve):
                record = execute_run(spec(args.end_time, args.dynamics, eval_every), registry,
                                     torch.device("cpu"))
            last = record["epochs"][-1]
            print(f"{name}: {time.process_time() - cpu:.2f} s CPU, "
                  f"{time.perf_counter() - wall:.1f} s wall; test accuracy "
                  f"{last['test_accuracy']:.4f}, energy at T {last['energy_end']:.6g}, "
                  f"forward NFE {last['forward_nfe']:g}", flush=True)


if __name__ == "__main__":
    main()
