"""Measure the reference timings the harness ships (harness/running/reference_times.json): for
each distinct epoch shape of the shipped suites (task, model, solver, widths, batch size,
options: ``harness.running.reference.epoch_shape``), one real run of its first seed, and its
wall time per epoch.

    nice -n 10 python benchmarks/reference_times.py [SUITE ...] [--max-epochs N]
        [--time-limit S] [--data-root DIR] [--out FILE]

Runs inline, one at a time, solo (a suite's ensembles are measured as solo runs). A run longer
than ``--max-epochs`` is cut to that many epochs, and one that reaches ``--time-limit`` counts
the epochs it finished; a run that finishes none, or whose data is missing, is left out. Later
measurements of a shape replace earlier ones in ``--out``; the machine line (CPU, cores, torch
and its threads, the range of the load average over the timings, the date) is rewritten each
time. On a busy machine, measure with ``OMP_NUM_THREADS=1``: with two threads on two loaded
cores, a point-cloud epoch took 30 times as long.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import tempfile
from pathlib import Path

import torch

from harness.plugins import load_registry
from harness.running.driver import run_suite
from harness.running.reference import REFERENCE_FILE, epoch_shape
from harness.suites.loader import load_suite

SHIPPED = ["smoke", "ci", "point-cloud-seeds", "point-cloud-100", "graph-stiff",
           "sequences-cpu", "images-cpu", "images-tol-sweep-cpu", "cnf-cpu", "spirals-cpu",
           "grandpp-cpu", "odenet-cpu", "memory-cpu", "stiff", "paper", "paper-authors-code"]
OUT = Path(__file__).resolve().parents[1] / "harness" / "running" / REFERENCE_FILE


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def measure(suite_path: str, args: argparse.Namespace, registry) -> list[dict]:
    suite = load_suite(suite_path, registry, data_root=args.data_root)
    firsts: dict[str, object] = {}
    for spec in suite.runs:
        firsts.setdefault(epoch_shape(spec.config()), spec)
    timings = []
    for spec in firsts.values():
        epochs = min(spec.epochs, args.max_epochs) if args.max_epochs else spec.epochs
        short = dataclasses.replace(spec, epochs=epochs, time_limit_s=args.time_limit)
        with tempfile.TemporaryDirectory() as out:
            outcome = run_suite([short], registry, out, "cpu", force=True, executor="inline")
        record = outcome.records[0]
        done = len(record.get("epochs") or [])
        if record["status"] != "ok" and (record.get("failure_kind") != "time_limit" or not done):
            print(f"  {spec.label}: left out ({record.get('failure_kind')}: "
                  f"{str(record.get('error'))[:80]})", flush=True)
            continue
        seconds = record["wall_time_s"] / max(done, 1)
        print(f"  {spec.label}: {seconds:.3f} s per epoch over {done} epochs", flush=True)
        timings.append({"suite": suite.name, "config": spec.config(), "epochs_measured": done,
                        "seconds_per_epoch": round(seconds, 4), "load": load()})
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suites", nargs="*", default=SHIPPED)
    parser.add_argument("--max-epochs", type=int, default=None)
    parser.add_argument("--time-limit", type=float, default=300.0)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    registry = load_registry()
    old = json.loads(args.out.read_text()) if args.out.is_file() else {"timings": []}
    timings = {epoch_shape(entry["config"]): entry for entry in old["timings"]}
    suites_dir = Path(__file__).resolve().parents[1] / "suites"
    for name in args.suites:
        path = name if name.endswith(".yaml") else str(suites_dir / f"{name}.yaml")
        print(f"{path} (load {load()})", flush=True)
        for entry in measure(path, args, registry):
            timings[epoch_shape(entry["config"])] = entry
        loads = [float(entry["load"].split()[0]) for entry in timings.values()]
        threads = torch.get_num_threads()
        machine = (f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} with "
                   f"{threads} thread{'s' * (threads != 1)}, at nice {os.nice(0)}, load average "
                   f"{min(loads):.0f}–{max(loads):.0f} while measuring, "
                   f"{datetime.date.today().isoformat()}")
        args.out.write_text(json.dumps({
            "machine": machine, "command": "python benchmarks/reference_times.py",
            "timings": sorted(timings.values(), key=lambda e: (e["suite"], e["config"]["task"],
                                                                e["config"]["model"]))},
            indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
