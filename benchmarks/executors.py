"""How much a local pool of 2 workers speeds up a suite of 10 tiny runs over 1 worker.

    python benchmarks/executors.py [--runs 10] [--epochs 30]

Both pools start their worker processes the same way, so the ratio measures the parallelism
(target on 2 cores: >= 1.6). Run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import tempfile
import time

from harness.plugins import load_registry
from harness.running.driver import run_suite
from harness.suites.runspec import RunSpec, default_settings


def tiny_suite(runs: int, epochs: int) -> list[RunSpec]:
    settings = default_settings()
    settings.update(epochs=epochs, lr=0.02)
    settings["solver"].update(rtol=1e-4, atol=1e-4)
    return [RunSpec.from_settings("bench", "point_cloud", "hbnode", seed, settings)
            for seed in range(runs)]


def timed(workers: int, runs: list[RunSpec]) -> float:
    registry = load_registry()
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        outcome = run_suite(runs, registry, out, "cpu", executor="local", workers=workers)
        elapsed = time.perf_counter() - start
    assert not outcome.failed and len(outcome.records) == len(runs)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    runs = tiny_suite(args.runs, args.epochs)
    one = timed(1, runs)
    two = timed(2, runs)
    print(f"{args.runs} runs of point_cloud/hbnode, {args.epochs} epochs each")
    print(f"1 worker : {one:7.2f} s")
    print(f"2 workers: {two:7.2f} s")
    print(f"speed-up : {one / two:7.2f}x (target >= 1.6 on 2 cores)")


if __name__ == "__main__":
    main()
