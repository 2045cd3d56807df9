"""Where a fast-backend evaluation's CPU time goes: f, the integrator's own work, the rest of the
training step, on plane vibration's first batch (the ``authors-code`` profile, as
``benchmarks/authors_code.py`` runs it).

    python benchmarks/eval_costs.py [--data-root DIR] [--models node hbnode] [--repeats 5]
                                    [--authors-dir DIR] [--threads 1]

Every repeat trains the same first batch from the same weights twice, once with every call of f
and every solve timed with ``time.perf_counter`` and once untimed (their order alternating), and,
with ``--authors-dir``, the authors' own loop on their first batch (a fresh unseeded model each
time, as theirs). Per evaluation (CPU time of the step over forward + backward NFE): f (the
field's forward, or in the adjoint the augmented derivative: the hand-written VJP and the
assembly of [−f, aᵀ∂f/∂z, aᵀ∂f/∂θ, 0]), the integrator (each solve's time less its f calls:
stage sums, error norm, step control, interpolation) and the rest (the model around the solves,
the loss, the optimizer). The parts are their shares of the timed step's wall-clock time times
its CPU time: ``process_time`` is a system call (about 2 µs here) that slowed the timed steps
by 10-40 %, while ``perf_counter`` costs 0.2 µs, and a busy machine's preemptions fall on the
parts in proportion to their time. The cap is the authors' CPU time per evaluation over the fast
backend's f + rest: the ratio an integrator that cost nothing would give. Medians over the
repeats with their range; the timed step's overhead is its CPU time over the untimed one's.
Last, :func:`floor` splits one call of f into its fixed cost and its per-row work.
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import torch
from torch.overrides import TorchFunctionMode

from authors_code import CPU, FirstBatches, measure_authors, per_evaluation  # this folder's
from harness import data_root_or_default
from harness.plugins import load_registry
from harness.running.precision import in_precision
from harness.running.runner import SoloTrainer
from harness.solvers.fast import adjoint
from harness.suites.loader import suite_from_document


class Tally:
    """Wall-clock seconds in f and in whole solves, by phase, while :attr:`on`; the last solve's
    problem (for :func:`floor`)."""

    def __init__(self) -> None:
        self.on = False
        self.seconds: dict[str, float] = {}
        self.problem: adjoint.FlatProblem | None = None

    def start(self) -> None:
        self.on = True
        self.seconds = dict.fromkeys(("f forward", "f backward", "solve forward",
                                      "solve backward"), 0.0)

    def timed(self, integrate: Callable) -> Callable:
        """``integrate`` with its solve and each call of its f timed (forward solves get None
        as their last argument, the adjoint's the augmented state's split)."""
        def run(func: Callable, y0: torch.Tensor, t0: float, t1: float, norm: Any, split: Any):
            if not self.on:
                return integrate(func, y0, t0, t1, norm, split)
            f_key, solve_key = ("f forward", "solve forward") if split is None else (
                "f backward", "solve backward")
            clock = time.perf_counter

            def f(t: Any, y: torch.Tensor) -> torch.Tensor:
                start = clock()
                out = func(t, y)
                self.seconds[f_key] += clock() - start
                return out
            start = clock()
            out = integrate(f, y0, t0, t1, norm, split)
            self.seconds[solve_key] += clock() - start
            return out
        return run


def install(tally: Tally) -> None:
    """Every fast solve from now on reports to ``tally`` (the problem's integrate wrapped)."""
    original = adjoint.FlatProblem.__init__

    def init(self, func, z0, t0, t1, integrate, params) -> None:
        original(self, func, z0, t0, t1, tally.timed(integrate), params)
        tally.problem = self
    adjoint.FlatProblem.__init__ = init


def trainer_for(model: str, data_root: str) -> SoloTrainer:
    """The authors-code profile's fast-backend run on the first training batch."""
    registry = load_registry()
    entry = {"task": "plane_vibration", "model": model, "seed": 0, "profile": "authors-code",
             "epochs": 2, "eval_every": 2, "batch_size": 64, "lr": 1e-3,
             "solver": {"method": "dopri5", "tol": 1e-7, "adjoint": True, "backend": "fast"}}
    (spec,) = suite_from_document({"runs": [entry], "data_root": data_root},
                                  Path("eval_costs.yaml"), registry).runs
    trainer = SoloTrainer(spec, registry, CPU)
    with in_precision(spec.precision):
        trainer.build()
    trainer.data = replace(trainer.data, train=FirstBatches(trainer.data.train, 1))
    return trainer


def one_step(trainer: SoloTrainer, start: tuple) -> tuple[float, float, int]:
    """CPU and wall-clock seconds of one training step from ``start``'s weights, and its NFE."""
    trainer.built.model.load_state_dict(start[0])
    trainer.built.optimizer.load_state_dict(start[1])
    with in_precision(trainer.spec.precision):
        cpu, wall = time.process_time(), time.perf_counter()
        (trained,) = trainer.train_epoch(1, None)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu, wall, sum(trained.nfe.values())


class Calls(TorchFunctionMode):
    """Counts the torch calls made under it."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def floor(problem: adjoint.FlatProblem, batches: tuple[int, ...] = (1, 16, 64, 256),
          calls: int = 200, rounds: int = 7) -> None:
    """f's CPU time per call against the batch (the last solve's f, forward and augmented; the
    fastest of ``rounds`` rounds of ``calls`` calls): a least-squares line's intercept is the fixed cost per call, its slope the per-row work;
    and the torch calls one f makes."""
    generator = torch.Generator().manual_seed(0)
    width = problem.shape[-1]
    lines = []
    for name in ("forward", "augmented"):
        seconds = []
        for batch in batches:
            z = torch.randn(batch, width, generator=generator) * 0.1
            one = adjoint.FlatProblem(problem.func, z, problem.t0, problem.t1,
                                      problem.integrate, problem.params)
            if name == "forward":
                f, state = one.field(), z.reshape(-1)
            else:
                f = one._augmented(z.numel())
                state = torch.cat([z.reshape(-1), z.reshape(-1),
                                   z.new_zeros(sum(p.numel() for p in one.params) + 1)])
            times = []
            with torch.no_grad():
                for _ in range(rounds):
                    start = time.process_time()
                    for _ in range(calls):
                        f(0.5, state)
                    times.append((time.process_time() - start) / calls)
                if batch == 64:
                    with Calls() as counted:
                        f(0.5, state)
            seconds.append(min(times))
            if batch == 64:
                count = counted.count
        slope, intercept = statistics.linear_regression(batches, seconds)
        cells = ", ".join(f"{b}: {s * 1e6:.1f}" for b, s in zip(batches, seconds))
        lines.append(f"  f {name}: µs per call by batch {cells}; fixed {intercept * 1e6:.1f} µs "
                     f"+ {slope * 1e6 * 64:.1f} µs at batch 64 ({count} torch calls)")
    tiny, times = torch.zeros(1), []
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(calls * 10):
            torch.relu(tiny)
        times.append((time.process_time() - start) / (calls * 10))
    lines.append(f"  one torch call (relu of one element): {min(times) * 1e6:.2f} µs")
    print("\n".join(lines), flush=True)


def spread(values: list[float], scale: float = 1e6, digits: int = 0) -> str:
    return (f"{statistics.median(values) * scale:.{digits}f} "
            f"({min(values) * scale:.{digits}f}–{max(values) * scale:.{digits}f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--models", nargs="+", default=["node", "hbnode"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--authors-dir", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}, nice {os.nice(0)}, "
          f"{torch.get_num_threads()} threads, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    tally = Tally()
    install(tally)
    data_root = str(data_root_or_default(args.data_root))
    for model in args.models:
        trainer = trainer_for(model, data_root)
        start = copy.deepcopy((trainer.built.model.state_dict(),
                               trainer.built.optimizer.state_dict()))
        one_step(trainer, start)  # warm up
        rows: dict[str, list[float]] = {}
        for repeat in range(args.repeats):
            for timed in ((True, False) if repeat % 2 == 0 else (False, True)):
                if timed:
                    tally.start()
                cpu, wall, nfe = one_step(trainer, start)
                tally.on = False
                if not timed:
                    rows.setdefault("untimed", []).append(cpu / nfe)
                    continue
                s, per = tally.seconds, cpu / wall / nfe  # a wall second's CPU, per evaluation
                f = s["f forward"] + s["f backward"]
                solves = s["solve forward"] + s["solve backward"]
                for key, value in (("step", wall), ("f", f), ("f forward", s["f forward"]),
                                   ("f backward", s["f backward"]), ("integrator", solves - f),
                                   ("rest", wall - solves), ("f + rest", wall - solves + f)):
                    rows.setdefault(key, []).append(value * per)
            if args.authors_dir:
                got = measure_authors(model, 1, args.authors_dir)
                rows.setdefault("authors", []).append(per_evaluation(got, "cpu_step_s"))
        print(f"{model}: NFE {nfe}; µs per evaluation, median (range) of {args.repeats}:")
        for key, values in rows.items():
            print(f"  {key:<11} {spread(values)}")
        overhead = [t / u for t, u in zip(rows["step"], rows["untimed"])]
        print(f"  timed/untimed step: {spread(overhead, 1, 3)}")
        if args.authors_dir:
            for key in ("untimed", "f + rest"):
                ratios = [a / b for a, b in zip(rows["authors"], rows[key])]
                print(f"  authors / {key}: {spread(ratios, 1, 2)}×")
        floor(tally.problem)


if __name__ == "__main__":
    main()
