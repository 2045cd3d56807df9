"""Per-evaluation cost of torchdiffeq's adaptive methods against the fast backend's, on the stiff
task's field (``suites/stiff.yaml``: diffusion1d, dh/dt = −L·h on 128 periodic points, float64).

    nice -n 10 python benchmarks/adaptive_methods.py [--methods adaptive_heun dopri5 ...]
        [--tol 1e-3] [--span 0.02] [--repeats 5] [--threads 1]

Each method solves h(0) → h(span) (the suite solves to t = 1; its step is bound by stability,
so a shorter span has the same steps per unit time and the same cost per evaluation) through
each backend's ``solve``, with ``adjoint: false``, repeats interleaved (torchdiffeq, fast,
torchdiffeq, …). It prints the load, then per method the NFE of both (which must be equal), whether
the end states are bit-identical, the medians of the time per evaluation and their ratio.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import replace

import torch
from torch import Tensor, nn

from harness.plugins import load_registry
from harness.solvers.settings import SolverConfig
from harness_plugins.tasks.diffusion1d import Diffusion


class Counted(nn.Module):
    """The field, counting its evaluations."""

    def __init__(self, field: nn.Module) -> None:
        super().__init__()
        self.field, self.calls = field, 0

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        self.calls += 1
        return self.field(t, z)


def solve_once(backend, config: SolverConfig, span: float, h0: Tensor) -> tuple[int, float, Tensor]:
    """(NFE, seconds, end state) of one solve over [0, span]."""
    func = Counted(Diffusion(h0.shape[-1]).to(torch.float64))
    t = torch.tensor([0.0, span], dtype=torch.float64)
    start = time.perf_counter()
    with torch.no_grad():
        end = backend.solve(func, h0, t, config)
    return func.calls, time.perf_counter() - start, end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+",
                        default=["adaptive_heun", "bosh3", "fehlberg2", "dopri5"])
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--span", type=float, default=0.02)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    backends = load_registry().backends
    h0 = torch.randn(1, 128, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    print(f"load {os.getloadavg()[0]:.1f}, {args.threads} thread(s), torch {torch.__version__}; "
          f"diffusion1d field, 128 points, float64, span {args.span:g}, tol {args.tol:g}")
    print(f"{'method':<15}{'NFE td':>8}{'NFE fast':>9}{'bitwise':>8}{'µs/eval td':>12}"
          f"{'µs/eval fast':>13}{'speed-up':>9}")
    for method in args.methods:
        config = SolverConfig(method=method, rtol=args.tol, atol=args.tol, adjoint=False)
        times: dict[str, list[float]] = {"torchdiffeq": [], "fast": []}
        ends: dict[str, Tensor] = {}
        nfe: dict[str, int] = {}
        for _ in range(args.repeats):
            for name in times:
                nfe[name], seconds, ends[name] = solve_once(
                    backends[name], replace(config, backend=name), args.span, h0)
                times[name].append(seconds / nfe[name] * 1e6)
        per_eval = {name: statistics.median(values) for name, values in times.items()}
        print(f"{method:<15}{nfe['torchdiffeq']:>8}{nfe['fast']:>9}"
              f"{str(torch.equal(ends['torchdiffeq'], ends['fast'])):>8}"
              f"{per_eval['torchdiffeq']:>12.1f}{per_eval['fast']:>13.1f}"
              f"{per_eval['torchdiffeq'] / per_eval['fast']:>8.2f}×", flush=True)


if __name__ == "__main__":
    main()
