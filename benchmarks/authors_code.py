"""The authors-code profile against the authors' own code: NFE of the first plane-vibration
training batches.

    python benchmarks/authors_code.py [--data-root DIR] [--batches 5] [--models node hbnode]
                                      [--profiles authors-code paper] [--tol 1e-7] [--seeds 0]

Trains each model on the first ``--batches`` training batches of plane vibration in the
authors' order (batch 64, lr 1e-3, dopri5 at tol 1e-7 unless ``--tol``, adjoint) and prints
the forward and backward NFE per batch, the seconds per step and the loss, beside what the
authors' code takes on this kind of CPU (issue 20, measured on hedixia/HeavyBallNODE at cd1065f: NODE-RNN 1306 / 1420,
HBNODE-RNN 2392 / 1846). Targets under ``authors-code``: forward within 10 %, backward within
25 % (the authors' adjoint integrates every interval with the last gap set, which the profile
does not copy). The authors' model was initialised unseeded, so ``--seeds`` shows how far the
harness's own numbers move from one initialisation (and stamp drop) to another. Times are wall-clock on shared cores: compare them within one run of this script only.
"""
from __future__ import annotations

import argparse
import itertools
import os
from pathlib import Path
from typing import Iterator

import torch

from harness.contract import DATA_ROOT_VARIABLE, TaskData
from harness.plugins import load_registry
from harness.running.runner import build_run, train
from harness.suites.loader import suite_from_document

CPU = torch.device("cpu")
#: Forward / backward NFE per batch of the authors' code, first five batches (issue 20).
AUTHORS = {"node": (1306, 1420), "hbnode": (2392, 1846)}


class FirstBatches:
    """The first ``count`` batches of a task's training batches, in their order."""

    def __init__(self, batches, count: int) -> None:
        self.batches, self.count = batches, count

    def set_epoch(self, epoch: int) -> None:
        self.batches.set_epoch(epoch)

    def __iter__(self) -> Iterator:
        return itertools.islice(iter(self.batches), self.count)


def measure(model: str, profile: str, batches: int, data_root: str,
            tol: float = 1e-7, seed: int = 0) -> dict[str, float]:
    """Forward and backward NFE per batch, seconds per step, the training loss (each profile's
    own: the authors' adds a reconstruction term) and forecast MSE over the first batches."""
    registry = load_registry()
    entry = {"task": "plane_vibration", "model": model, "seed": seed, "profile": profile,
             "epochs": 2, "eval_every": 2, "batch_size": 64, "lr": 1e-3,
             "solver": {"method": "dopri5", "tol": tol, "adjoint": True}}
    (spec,) = suite_from_document({"runs": [entry], "data_root": data_root},
                                  Path("authors_code.yaml"), registry).runs
    task = registry.tasks["plane_vibration"]
    built = build_run(spec, registry, CPU)
    data = task.data({**task.options, **spec.task_options}, spec.seed, spec.data_root, CPU,
                     spec.batch_size)
    first = TaskData(train=FirstBatches(data.train, batches), test=())
    record = next(iter(train(spec, built, first, CPU)))  # epoch 1 only; no evaluation
    return {"forward_nfe": record["forward_nfe"], "backward_nfe": record["backward_nfe"],
            "step_s": record["train_time_s"] / record["iterations"], "loss": record["loss"],
            "forecast_mse": record["forecast_mse"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=os.environ.get(DATA_ROOT_VARIABLE, "../shared/data"))
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=["node", "hbnode"])
    parser.add_argument("--profiles", nargs="+", default=["authors-code"])
    parser.add_argument("--tol", type=float, default=1e-7)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="initialisations (the stamps dropped follow the seed too)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"load: {os.getloadavg()[0]:.1f}; first {args.batches} plane-vibration batches, "
          f"tol {args.tol:g}, {torch.get_num_threads()} threads")
    print(f"{'profile':<13}{'model':<8}{'seed':>5}{'fwd NFE':>9}{'bwd NFE':>9}{'authors':>13}"
          f"{'fwd ratio':>11}{'bwd ratio':>11}{'s/step':>8}{'loss':>9}{'forecast':>10}")
    for profile, model, seed in itertools.product(args.profiles, args.models, args.seeds):
        got = measure(model, profile, args.batches, str(Path(args.data_root).resolve()), args.tol,
                      seed)
        forward, backward = AUTHORS.get(model, (float("nan"), float("nan")))
        print(f"{profile:<13}{model:<8}{seed:>5}{got['forward_nfe']:>9.0f}"
              f"{got['backward_nfe']:>9.0f}"
              f"{f'{forward}/{backward}':>13}{got['forward_nfe'] / forward:>11.2f}"
              f"{got['backward_nfe'] / backward:>11.2f}{got['step_s']:>8.2f}{got['loss']:>9.4f}"
              f"{got['forecast_mse']:>10.4f}",
              flush=True)


if __name__ == "__main__":
    main()
