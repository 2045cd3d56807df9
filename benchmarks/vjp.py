"""What one vector-Jacobian product of the dynamics costs against one call of them, by the ways
of taking it that the fast backend's adjoint could use.

    python benchmarks/vjp.py [--calls 2000] [--compile]

On point-cloud HBNODE's dynamics (120 points, the task's widths): one call without a graph;
``torch.autograd.grad`` (what ``harness/solvers/fast/adjoint.py`` does: one forward with a graph, one
backward); ``torch.func.vjp`` over ``functional_call``; with ``--compile``, that under
``torch.compile`` (slow to build; prints its recompilations); the VJP of the task's network
f alone through autograd; and the hand-written VJP the fast backend's adjoint takes
(``Dynamics.vjp``: :mod:`harness.toolkit.pullbacks` for f, ``HBNODE.derivatives_vjp`` around it).
Medians of interleaved repeats.
"""
from __future__ import annotations

import argparse
import statistics
from typing import Callable

import torch
import torch.func

from backends import CPU, point_cloud_spec, timings  # this folder's backend benchmark
from harness.plugins import load_registry
from harness.running.runner import build_run


def per_call_us(variants: dict[str, Callable[[], object]], calls: int, repeats: int = 7) -> dict[str, float]:
    """Median µs per call of each variant: ``calls`` calls a repeat, the variants interleaved
    as in the backend benchmark."""
    def batch(call: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(calls):
                call()
        return run
    times = timings({name: batch(call) for name, call in variants.items()}, repeats)
    return {name: statistics.median(values) / calls * 1e6 for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()

    dynamics = build_run(point_cloud_spec("torchdiffeq", 1), load_registry(), CPU).model.ode.dynamics
    z = torch.randn(120, 2 * dynamics.f.net[0].in_features)
    adjoint = torch.randn_like(z)
    t = torch.tensor(0.0)
    params = tuple(dynamics.parameters())
    named = {name: p.detach() for name, p in dynamics.named_parameters()}

    def call() -> None:
        with torch.no_grad():
            dynamics(t, z)

    def autograd_grad() -> None:
        leaf = z.detach().requires_grad_(True)
        with torch.enable_grad():
            out = dynamics(t, leaf)
            torch.autograd.grad(out, (leaf, *params), adjoint, allow_unused=True,
                                materialize_grads=True)

    h = z[:, : z.shape[1] // 2]
    f_params = tuple(dynamics.f.parameters())

    def network_only() -> None:
        leaf = h.detach().requires_grad_(True)
        with torch.enable_grad():
            out = dynamics.f(t, leaf)
            torch.autograd.grad(out, (leaf, *f_params), adjoint[:, : h.shape[1]])

    def hand_written() -> None:
        with torch.no_grad():
            dynamics.vjp(t, z, adjoint)

    def func_vjp(p: dict, state: torch.Tensor, a: torch.Tensor) -> tuple:
        out, pullback = torch.func.vjp(
            lambda p_, z_: torch.func.functional_call(dynamics, p_, (t, z_)), p, state)
        return out, pullback(a)

    variants: dict[str, Callable[[], object]] = {
        "call (no graph)": call,
        "torch.autograd.grad VJP": autograd_grad,
        "torch.func.vjp": lambda: func_vjp(named, z, adjoint),
        "autograd.grad VJP of f alone": network_only,
        "hand-written VJP (Dynamics.vjp)": hand_written,
    }
    if args.compile:
        compiled = torch.compile(func_vjp, dynamic=False)
        variants["torch.compile(torch.func.vjp)"] = lambda: compiled(named, z, adjoint)
    results = per_call_us(variants, args.calls)
    base = results["call (no graph)"]
    for name, us in results.items():
        print(f"{name:32s} {us:8.1f} us/call  {us / base:5.2f}x a call")


if __name__ == "__main__":
    main()
