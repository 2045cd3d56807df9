"""What one vector-Jacobian product of the dynamics costs against one call of them, by the ways
of taking it that the fast backend's adjoint could use.

    python benchmarks/vjp.py [--calls 2000] [--compile] [--members 16 --rows 16]

On point-cloud HBNODE's dynamics (120 points, the task's widths): one call without a graph;
``torch.autograd.grad`` (what ``harness/solvers/fast/adjoint.py`` does: one forward with a graph, one
backward); ``torch.func.vjp`` over ``functional_call``; with ``--compile``, that under
``torch.compile`` (slow to build; prints its recompilations); the VJP of the task's network
f alone through autograd; and the hand-written VJP the fast backend's adjoint takes
(``Dynamics.vjp``: :mod:`harness.toolkit.pullbacks` for f, ``HBNODE.derivatives_vjp`` around it).
Medians of interleaved repeats.

With ``--members M``: an ensemble of M point-cloud HBNODE seeds, ``--rows`` rows each; one
evaluation of the members' augmented adjoint field as the fast backend's ensemble adjoint takes
it (``MemberProblem``'s, [−f, aᵀ∂f/∂z, aᵀ∂f/∂θ, τ] for every member): its vector-Jacobian
products by autograd (as before hand pullbacks served members) and by hand
(``MemberODE.field_vjp``), against one call of the members' field without a graph.
"""
from __future__ import annotations

import argparse
import statistics
from dataclasses import replace
from typing import Callable

import numpy as np
import torch
import torch.func

from backends import CPU, point_cloud_spec, timings  # this folder's backend benchmark
from harness.plugins import load_registry
from harness.running.runner import build_run
from harness.solvers.fast.member_adjoint import MemberProblem
from harness.solvers.members import Running
from harness.toolkit.ensemble import Members, stack_models


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


def member_variants(size: int, rows: int) -> dict[str, Callable[[], object]]:
    """One evaluation of an ensemble's augmented adjoint field, its VJPs by autograd and by
    hand, and one call of the members' field without a graph (every member running)."""
    registry = load_registry()
    spec = point_cloud_spec("fast", 1)
    members = Members(size)
    block = stack_models([build_run(replace(spec, seed=seed), registry, CPU).model
                          for seed in range(size)], members).ode
    ode, by_autograd = block.members_solve(None), block.members_solve(None)
    by_autograd.has_vjp = False
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(size * rows, 2 * block.width, generator=generator)
    adjoint = torch.randn(z.shape, generator=generator)
    sizes = sum(p[0].numel() for p in ode.params)
    state = torch.cat([z.reshape(size, -1), adjoint.reshape(size, -1),
                       z.new_zeros(size, sizes + 1)], dim=1)
    n, s, t = rows * 2 * block.width, np.zeros(size), torch.zeros(size)
    hand = MemberProblem(ode, z, 0.0, 1.0, None)._augmented(n)
    autograd = MemberProblem(by_autograd, z, 0.0, 1.0, None)._augmented(n)
    running = Running(np.ones(size, dtype=bool))
    assert ode.has_vjp, "point-cloud HBNODE's members should have a hand-written VJP"

    def call() -> None:
        with torch.no_grad():
            ode.field(t, z, running)
    return {"members: field (no graph)": call,
            "members: adjoint field, autograd VJP": lambda: autograd(s, state, running),
            "members: adjoint field, hand VJP": lambda: hand(s, state, running)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--members", type=int, default=0,
                        help="measure an ensemble of this many members instead")
    parser.add_argument("--rows", type=int, default=16, help="each member's rows (--members)")
    args = parser.parse_args()
    if args.members:
        results = per_call_us(member_variants(args.members, args.rows), args.calls)
        base = results["members: field (no graph)"]
        for name, us in results.items():
            print(f"{name:38s} {us:8.1f} us/call  {us / base:5.2f}x a call")
        return

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
