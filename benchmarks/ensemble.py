"""Seeds per hour: solo runs one after another against ensembles of 10, 25 and 100 members.

    python benchmarks/ensemble.py [--iterations 300] [--sizes 10,25,100] [--solo-seeds 5]
                                  [--model hbnode] [--threads 1] [--task point_cloud]
                                  [--rounds 1] [--floor]

The point cloud at the paper's settings (full batch, dopri5 at tol 1e-7, the adjoint, lr 0.01;
300 iterations unless told otherwise), the fast backend, float32, one evaluation at the end.
Solo: seeds 0…K−1 trained one after another through the runner; an ensemble of M: seeds
0…M−1 through the ensemble runner, in this same process. Prints each one's seeds per hour, the
ratio to solo, and the share of the members 0…K−1 whose forward and backward NFE equal their
solo run's in every epoch, and of their epochs (float32: batched kernels may round differently
from the solo run's, and a rounding can flip an accept). The goal on a 2-core CPU: at least 10x
solo's seeds per hour. The CPU model and the machine's load (before and after) are printed: on
shared cores the wall-clock ratio moves with the load between the solo and the ensemble runs,
so the ratio in this process's CPU seconds (one thread) is printed too. Even that moves by
±20 % from one run to the next on shared cores (the load changes the caches and the clock both
sides see); ``--rounds R`` repeats solo and ensembles R times in turn, each ensemble against
the solo round just before it, and prints the median ratio with its range. On the point cloud
(one solve per phase and iteration) it prints the members' evaluations over N times the slowest
member's, per phase: the share of the rows that computing every member at every evaluation
would spend on members still stepping (the integrator computes those members' rows only).

``--floor`` then measures how far any ensemble doing the same arithmetic could go: an ensemble
of the largest size trained again under torch.profiler (five iterations at a time, so that its
events fit in memory). It prints the ensemble's CPU seconds per seed in the ATen operators
whose self time (the kernel, none of the Python before it nor the operators it calls)
averages at least 20 µs a call — the network's batched products and activations on every
member's rows, arithmetic that exactness fixes, where the profiler's own cost per call is a
small share — the ratio to the last solo round were that all an ensemble spent, and what
everything else would have to shrink to for 10x.

``--task plane_vibration`` (the data root from HARNESS_DATA_ROOT): the ODE-RNN on 16 training
windows in one batch, lr 1e-3, dopri5 at tol 1e-5 with the adjoint, validation and test on 16
windows after the last iteration; an iteration is an epoch there too. (No adjoint-decay probe:
a member's is taken on its solo model, one member after another, as long as a solo run's.)
"""
from __future__ import annotations

import argparse
import collections
import os
import platform
import statistics
import time
import warnings

import torch
from torch.profiler import ProfilerActivity, profile, schedule

from harness.plugins import load_registry
from harness.registry import Registry
from harness.record import RunRecord
from harness.running.ensembles import execute_ensemble
from harness.running.runner import execute_run
from harness.suites.runspec import RunSpec, default_settings

CPU = torch.device("cpu")


def spec(model: str, seed: int, iterations: int, task: str = "point_cloud") -> RunSpec:
    settings = default_settings()
    settings.update(epochs=iterations, lr=0.01, eval_every=iterations)
    settings["solver"].update(backend="fast")  # the task's tol 1e-7, with the adjoint
    if task == "plane_vibration":
        settings.update(lr=1e-3, batch_size=16, task_options={
            "train_windows": 16, "eval_windows": 16})
        settings["solver"].update(rtol=1e-5, atol=1e-5)
    return RunSpec.from_settings("bench", task, model, seed, settings)


def nfe_path(record: RunRecord) -> list[tuple[float, float]]:
    return [(epoch["forward_nfe"], epoch["backward_nfe"]) for epoch in record["epochs"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--sizes", default="10,25,100")
    parser.add_argument("--solo-seeds", type=int, default=5)
    parser.add_argument("--model", default="hbnode")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--task", default="point_cloud", choices=("point_cloud", "plane_vibration"))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--floor", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{cpu_model()}; load average {os.getloadavg()}; torch threads "
          f"{torch.get_num_threads()}; {args.task}, {args.model}, {args.iterations} iterations")
    registry = load_registry()
    sizes = [int(s) for s in args.sizes.split(",")]
    ratios: dict[int, list[float]] = {size: [] for size in sizes}
    ensemble_cpu: dict[int, float] = {}
    solo_cpu = 0.0
    # Untimed: what a process does once (imports, probes of torch's summation orders) is
    # neither side's cost.
    execute_ensemble([spec(args.model, seed, 1, args.task) for seed in range(2)], registry, CPU)
    execute_run(spec(args.model, 0, 1, args.task), registry, CPU)
    for round_ in range(args.rounds):
        if args.rounds > 1:
            print(f"round {round_ + 1} of {args.rounds}")
        solo = solo_round(args, registry)
        solo_cpu = solo[2] / args.solo_seeds
        for size in sizes:
            ratio, ensemble_cpu[size] = ensemble_round(args, registry, size, *solo)
            ratios[size].append(ratio)
        print(f"load average {os.getloadavg()}")
    if args.rounds > 1:
        for size, values in ratios.items():
            print(f"ensemble of {size} over {args.rounds} rounds, CPU seconds: median "
                  f"{statistics.median(values):.1f}x solo ({min(values):.1f}x to "
                  f"{max(values):.1f}x)")
    if args.floor:
        size = max(sizes)
        floor(args, registry, size, solo_cpu, ensemble_cpu[size] / size)


def solo_round(args: argparse.Namespace, registry: Registry
               ) -> tuple[list[RunRecord], float, float]:
    """Seeds 0…K−1 one after another: their records, seconds and CPU seconds; prints the
    rate."""
    records, start, cpu_start = [], time.perf_counter(), time.process_time()
    for seed in range(args.solo_seeds):
        records.append(execute_run(spec(args.model, seed, args.iterations, args.task),
                                   registry, CPU))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    failed = sum(r["status"] != "ok" for r in records)
    print(f"solo: {args.solo_seeds} seeds in {seconds:.1f} s ({cpu:.1f} CPU s): "
          f"{args.solo_seeds / seconds * 3600:.0f} seeds/hour ({failed} failed)")
    return records, seconds, cpu


def ensemble_round(args: argparse.Namespace, registry: Registry, size: int,
                   solo_records: list[RunRecord], solo_seconds: float, solo_cpu: float
                   ) -> tuple[float, float]:
    """An ensemble of seeds 0…size−1 against the solo round before it: prints its rate, the
    ratios and how many member-epochs took the solo NFE; returns the CPU-seconds ratio and its
    CPU seconds."""
    specs = [spec(args.model, seed, args.iterations, args.task) for seed in range(size)]
    start, cpu_start = time.perf_counter(), time.process_time()
    records = execute_ensemble(specs, registry, CPU)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    compared = list(zip(records, solo_records))
    same = sum(nfe_path(member) == nfe_path(alone) for member, alone in compared)
    steps = [(a == b) for member, alone in compared
             for a, b in zip(nfe_path(member), nfe_path(alone))]
    failed = sum(r["status"] != "ok" for r in records)
    cpu_ratio = (size / cpu) / (args.solo_seeds / solo_cpu)
    print(f"ensemble of {size}: {seconds:.1f} s ({cpu:.1f} CPU s): "
          f"{size / seconds * 3600:.0f} seeds/hour, {size / seconds * solo_seconds / args.solo_seeds:.1f}x "
          f"solo ({cpu_ratio:.1f}x in CPU seconds); NFE "
          f"as solo in every epoch: {same}/{len(compared)} members, in {sum(steps)}/"
          f"{len(steps)} member-epochs ({failed} failed)")
    if args.task == "point_cloud":
        print(f"  members' NFE / (N x the slowest member's): {stepping_share(records)}")
    return cpu_ratio, cpu


def floor(args: argparse.Namespace, registry: Registry, size: int, solo: float,
          ensemble: float, large_us: float = 20.0, goal: float = 10.0, window: int = 5) -> None:
    """An ensemble of ``size`` trained again under torch.profiler, ``window`` iterations at a
    time: prints its CPU seconds per seed in the ATen operators whose self time averages at
    least ``large_us`` a call, the ratio to ``solo`` CPU seconds per seed were that all an
    ensemble spent, and what everything else (of ``ensemble`` seconds per seed) would have to
    shrink to for ``goal`` times solo."""
    seconds: collections.Counter[str] = collections.Counter()
    calls: collections.Counter[str] = collections.Counter()

    def tally(profiled: profile) -> None:
        for event in profiled.key_averages():
            if event.key.startswith("aten::"):
                seconds[event.key[6:]] += event.self_cpu_time_total / 1e6
                calls[event.key[6:]] += event.count

    specs = [spec(args.model, seed, args.iterations, args.task) for seed in range(size)]
    last_epoch = 0

    def step(event: str, run: object, **details: object) -> None:
        """A window's step at each iteration: the first member's report of a new epoch
        (a failed member reports none)."""
        nonlocal last_epoch
        if event == "epoch_finished" and details["epoch"] != last_epoch:
            last_epoch = details["epoch"]
            profiled.step()

    with warnings.catch_warnings():  # windows without warm-up, events dropped once tallied
        warnings.filterwarnings("ignore", "Profiler won't be using warmup")
        warnings.filterwarnings("ignore", ".*Profiler clears events at the end of each cycle")
        with profile(activities=[ProfilerActivity.CPU], on_trace_ready=tally,
                     schedule=schedule(wait=0, warmup=0, active=window)) as profiled:
            execute_ensemble(specs, registry, CPU, notify=step)
    large = {name: total / size for name, total in seconds.most_common()
             if total >= large_us * 1e-6 * calls[name]}
    arithmetic = sum(large.values())
    if not arithmetic:
        print(f"floor: no ATen operator took {large_us:g} us a call on average")
        return
    print(f"floor, an ensemble of {size} profiled: in ATen operators of >= {large_us:g} us a "
          f"call {arithmetic * 1e3:.1f} CPU ms per seed ("
          + ", ".join(f"{name} {t * 1e3:.1f}" for name, t in large.items() if t >= 1e-4)
          + f"): at most {solo / arithmetic:.1f}x solo ({solo * 1e3:.1f} ms per seed) were that "
          f"all an ensemble spent\n  everything else, {(ensemble - arithmetic) * 1e3:.1f} ms "
          f"per seed, would have to fall to {(solo / goal - arithmetic) * 1e3:.1f} for {goal:g}x")


def stepping_share(records: list[RunRecord]) -> str:
    """Forward and backward: the sum over the members that finished and their epochs of each
    one's NFE, over the member count times the largest NFE among them in each epoch."""
    paths = [nfe_path(record) for record in records if record["status"] == "ok"]
    shares = []
    for phase, name in enumerate(("forward", "backward")):
        epochs = [[path[epoch][phase] for path in paths] for epoch in range(len(paths[0]))]
        shares.append(f"{name} {sum(map(sum, epochs)) / sum(len(e) * max(e) for e in epochs):.2f}")
    return ", ".join(shares)


def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), or the platform's processor."""
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info
                        if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()
