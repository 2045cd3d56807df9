"""Solver backends side by side: harness overhead, fast vs torchdiffeq speed at equal NFE, and
memory against integration length.

    python benchmarks/backends.py [--repeats 7] [--threads N]

Every comparison runs in this one process, its variants interleaved repeat by repeat, and
reports medians. Targets: harness overhead <= 1 % over a bare loop; fast >= 2x torchdiffeq per
training step, with the NFE of both printed beside it. The machine's load (``uptime``) is
printed first: on shared cores, compare ratios, not absolute times.
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from importlib.util import find_spec
from typing import Callable

import torch
from torch import nn

from harness.contract import TaskData
from harness.plugins import load_registry
from harness.running.runner import SoloTrainer, build_run
from harness.solvers.settings import SolverConfig
from harness.suites.runspec import RunSpec, default_settings
from harness.toolkit.networks import Autonomous, mlp
from harness.toolkit.nfe import NFECounter
from harness.toolkit.ode import ODEBlock
from harness.toolkit.odernn import ODERNN

CPU = torch.device("cpu")
Step = Callable[[], None]


def timings(variants: dict[str, Step], repeats: int) -> dict[str, list[float]]:
    """Seconds of each variant in every repeat, the variants alternating within a repeat and
    their order reversed every other repeat, so that none always runs first."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for step in variants.values():  # warm up
        step()
    for repeat in range(repeats):
        order = list(variants.items())
        for name, step in order if repeat % 2 == 0 else reversed(order):
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return times


def interleaved(variants: dict[str, Step], repeats: int) -> dict[str, float]:
    """Median seconds of each variant, the variants alternating within every repeat."""
    return {name: statistics.median(values) for name, values in timings(variants, repeats).items()}


def point_cloud_spec(backend: str, epochs: int) -> RunSpec:
    settings = default_settings()
    settings.update(epochs=epochs, lr=0.01, eval_every=epochs)
    settings["solver"].update(backend=backend)  # the task's tol 1e-7, with the adjoint
    return RunSpec.from_settings("bench", "point_cloud", "hbnode", 0, settings)


def harness_overhead(registry, repeats: int, steps: int) -> None:
    """``steps`` training steps of point-cloud HBNODE through the runner (NFE phases, timing,
    metrics, one evaluation) against a bare loop of the same steps on the same model."""
    spec = point_cloud_spec("fast", steps)
    built = build_run(spec, registry, CPU)
    data = built.task.data(dict(built.task.options), 0, None, CPU, None)
    state = copy.deepcopy((built.model.state_dict(), built.optimizer.state_dict()))
    trainer = SoloTrainer(spec, registry, CPU)  # the runner's training, on this model and data
    trainer.built, trainer.data = built, data

    def reset() -> None:
        built.model.load_state_dict(state[0])
        built.optimizer.load_state_dict(state[1])

    def through_harness() -> None:
        reset()
        for epoch in range(steps):
            trainer.train_epoch(epoch, None)
        trainer.evaluate(steps - 1)

    def bare_loop() -> None:
        reset()
        for _ in range(steps):
            for x, y in data.train:
                loss = built.task.loss(built.model(x), y)
                built.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                built.optimizer.step()
        with torch.no_grad():
            for x, y in data.test:
                built.task.loss(built.model(x), y).item()

    times = timings({"harness": through_harness, "bare": bare_loop}, repeats)
    # Each repeat's ratio compares two runs made back to back, so drifts of a shared machine's
    # speed cancel; the median of the ratios is the estimate, their quartiles its spread.
    ratios = [h / b - 1 for h, b in zip(times["harness"], times["bare"])]
    low, middle, high = statistics.quantiles(ratios, n=4)
    medians = {name: statistics.median(values) / steps * 1e3 for name, values in times.items()}
    print(f"harness overhead, point-cloud HBNODE, {steps} steps + 1 eval (fast backend): "
          f"{medians['harness']:.2f} ms/step vs bare {medians['bare']:.2f} ms/step: "
          f"{middle * 100:+.2f} % (quartiles {low * 100:+.2f} / {high * 100:+.2f} %; target <= 1 %)")


def training_step(model: nn.Module, loss_of: Callable[[nn.Module], torch.Tensor],
                  counter: NFECounter) -> tuple[Step, dict[str, float]]:
    """One optimizer step, and the NFE of its last call by phase."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    start = copy.deepcopy((model.state_dict(), optimizer.state_dict()))
    nfe: dict[str, float] = {}

    def step() -> None:  # from the same weights every time, so every repeat does the same work
        model.load_state_dict(start[0])
        optimizer.load_state_dict(start[1])
        counter.take()
        with counter.in_phase("forward"):
            loss = loss_of(model)
        optimizer.zero_grad(set_to_none=True)
        with counter.in_phase("backward"):
            loss.backward()
        optimizer.step()
        nfe.update(counter.take())
    return step, nfe


def point_cloud_step(registry, backend: str) -> tuple[Step, dict[str, float]]:
    built = build_run(point_cloud_spec(backend, 1), registry, CPU)
    data: TaskData = built.task.data(dict(built.task.options), 0, None, CPU, None)
    ((x, y),) = list(data.train)
    return training_step(built.model, lambda model: built.task.loss(model(x), y), built.counter)


def ode_rnn_step(family_name: str, registry, backend: str) -> tuple[Step, dict[str, float]]:
    """A plane-vibration-sized ODE-RNN (the task's widths, batch 64, 64 stamps of 5 features,
    10 % of stamps dropped, tol 1e-7): one solve per stamp, on synthetic data."""
    family = registry.families[family_name]
    widths = {"node": (21, 63, 84), "hbnode": (20, 20, 20)}[family_name]
    n, h1, h2 = widths
    state, features, batch, stamps = len(family.parts) * n, 5, 64, 64
    counter = NFECounter()
    torch.manual_seed(0)
    solver = SolverConfig(rtol=1e-7, atol=1e-7, backend=backend)
    block = ODEBlock(family(), Autonomous(mlp([family.f_input_parts * n, h1, h2, n], nn.ReLU)),
                     n, solver, counter, registry.backends[backend])
    model = nn.ModuleDict({"rnn": ODERNN(block, nn.Linear(state + features, state)),
                           "head": nn.Linear(n, features)})
    generator = torch.Generator().manual_seed(0)
    series = torch.randn(batch, stamps + 1, features, generator=generator).cumsum(1) * 0.1
    gaps = 1.0 + (torch.rand(batch, stamps, generator=generator) < 0.1).float()

    def loss_of(m: nn.Module) -> torch.Tensor:
        trajectory = m["rnn"](torch.zeros(batch, state), series[:, :-1], gaps)
        predictions = torch.stack([m["head"](m["rnn"].read(z)) for z in trajectory.after], 1)
        return (predictions - series[:, 1:]).pow(2).mean()
    return training_step(model, loss_of, counter)


def compare(label: str, make: Callable[[str], tuple[Step, dict[str, float]]], candidate: str,
            repeats: int, target: str = "") -> None:
    """Time ``make(backend)``'s training step under torchdiffeq and ``candidate``, interleaved,
    and print both with their NFE and the speed-up."""
    steps = {backend: make(backend) for backend in ("torchdiffeq", candidate)}
    times = interleaved({backend: step for backend, (step, _) in steps.items()}, repeats)
    nfe = {backend: f"{counts['forward']}/{counts['backward']}"
           for backend, (_, counts) in steps.items()}
    print(f"{label}: torchdiffeq {times['torchdiffeq'] * 1e3:.1f} ms/step (NFE fwd/bwd "
          f"{nfe['torchdiffeq']}), {candidate} {times[candidate] * 1e3:.1f} ms/step (NFE "
          f"{nfe[candidate]}): {times['torchdiffeq'] / times[candidate]:.2f}x{target}")


def backend_speed(registry, repeats: int) -> None:
    def point_cloud(backend: str) -> tuple[Step, dict[str, float]]:
        return point_cloud_step(registry, backend)

    compare("point-cloud HBNODE", point_cloud, "fast", repeats, " (target >= 2x)")
    for family, label in (("node", "plane-vibration-sized ODE-RNN (NODE)"),
                          ("hbnode", "plane-vibration-sized HBNODE-RNN")):
        compare(label, lambda backend, family=family: ode_rnn_step(family, registry, backend),
                "fast", max(3, repeats // 2), " (target >= 2x)")
    if "torchode" in registry.backends and find_spec("torchode"):
        compare("point-cloud HBNODE (torchode: per-element steps, NFE = batched calls)",
                point_cloud, "torchode", repeats)


def saved_bytes(backend: str, adjoint: bool, length: float) -> tuple[int, int]:
    """(bytes held for backward after the forward pass, forward NFE) of a point-cloud-sized
    HBNODE block solved over ``length`` time units."""
    registry = load_registry()
    family = registry.families["hbnode"]
    counter = NFECounter()
    torch.manual_seed(0)
    f = Autonomous(mlp([2, 14, 14, 2], nn.ELU))
    block = ODEBlock(family(), f, 2, SolverConfig(rtol=1e-5, atol=1e-5, adjoint=adjoint,
                                                   backend=backend), counter,
                     registry.backends[backend])
    z0 = torch.randn(120, 4, generator=torch.Generator().manual_seed(0))
    held: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        held[storage.data_ptr()] = storage.nbytes()
        return tensor
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = block(z0, duration=torch.full((120,), length)).sum()
    forward_nfe = counter.counts["forward"]
    loss.backward()  # outside the hooks: the adjoint's own transient graphs are not counted
    return sum(held.values()), forward_nfe


def memory(lengths: list[float]) -> None:
    print("memory held for backward (tensors saved by autograd) against integration length, "
          "point-cloud HBNODE block, tol 1e-5:")
    print(f"  {'length':>6} | {'fast adjoint':>14} | {'torchdiffeq adjoint':>19} | "
          f"{'fast no adjoint':>15} | {'torchdiffeq no adj.':>19} | forward NFE")
    for length in lengths:
        cells = [saved_bytes(backend, adjoint, length)
                 for adjoint in (True, False) for backend in ("fast", "torchdiffeq")]
        kb = [f"{held / 1024:.0f} KiB" for held, _ in cells]
        print(f"  {length:>6g} | {kb[0]:>14} | {kb[1]:>19} | {kb[2]:>15} | {kb[3]:>19} | "
              f"{cells[0][1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20, help="training steps per overhead timing")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice; "
                        "each of N workers on N cores gets 1)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    registry = load_registry()
    harness_overhead(registry, 3 * args.repeats, args.steps)
    backend_speed(registry, args.repeats)
    memory([1, 4, 16, 64])


if __name__ == "__main__":
    main()
