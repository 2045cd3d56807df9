"""One torch thread against more, per epoch of a shipped suite's first run: wall time and the
CPU time the process spent, so that the default number of threads is a measured choice.

    python benchmarks/threads.py [SUITE ...] [--threads 1 2] [--epochs 1] [--repeats 3]
        [--task-option KEY=VALUE ...] [--data-root DIR]

Each suite's first run, cut to ``--epochs``, runs inline in this process once per thread count
per repeat (``--task-option`` overriding its task options, e.g. ``train_size=256`` for a
shorter image epoch), the counts alternating and their order reversed every other repeat; it prints the
median per epoch of the record's wall time, of its training time (``train_time_s``: the
epochs' steps, without data loading and evaluation) and of the CPU seconds of the process
(all its threads), and the load average before and after. Run it without ``OMP_NUM_THREADS``
(it sets the threads itself); at ``nice -n 10`` on a shared machine the load is the result's
context, so say it with the numbers.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml

from harness.plugins import load_registry
from harness.running.driver import run_suite
from harness.suites.loader import load_suite


def once(spec, registry, threads: int) -> tuple[float, float, float]:
    """Wall, training and CPU seconds per epoch of ``spec`` at ``threads`` torch threads."""
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as out:
        cpu = time.process_time()
        record = run_suite([spec], registry, out, "cpu", force=True,
                           executor="inline").records[0]
        cpu = time.process_time() - cpu
    if record["status"] != "ok":
        raise SystemExit(f"{spec.label} at {threads} threads failed: {record.get('error')}")
    epochs = max(len(record["epochs"]), 1)
    train = sum(epoch["train_time_s"] for epoch in record["epochs"])
    return record["wall_time_s"] / epochs, train / epochs, cpu / epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suites", nargs="*", default=["point-cloud-seeds", "images-cpu"])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--task-option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    registry = load_registry()
    suites_dir = Path(__file__).resolve().parents[1] / "suites"
    print(f"{os.cpu_count()} cores, torch {torch.__version__}, nice {os.nice(0)}, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    for name in args.suites:
        path = name if name.endswith(".yaml") else str(suites_dir / f"{name}.yaml")
        spec = load_suite(path, registry, data_root=args.data_root).runs[0]
        options = dict(spec.task_options, **{key: yaml.safe_load(value) for key, value in
                                             (item.split("=", 1) for item in args.task_option)})
        spec = dataclasses.replace(spec, epochs=args.epochs, eval_every=args.epochs,
                                   task_options=options)
        times: dict[int, list[tuple[float, float, float]]] = {n: [] for n in args.threads}
        for repeat in range(args.repeats):
            for threads in args.threads if repeat % 2 == 0 else reversed(args.threads):
                times[threads].append(once(spec, registry, threads))
        print(f"{spec.label}, {args.epochs} epoch(s), {args.repeats} repeats, medians per epoch "
              f"(load average now {os.getloadavg()[0]:.1f}):", flush=True)
        for threads, values in times.items():
            wall, train, cpu = (statistics.median(column) for column in zip(*values))
            print(f"  {threads} thread{'s' * (threads != 1)}: wall {wall:.3g} s, "
                  f"training {train:.3g} s, CPU {cpu:.3g} s", flush=True)


if __name__ == "__main__":
    main()
