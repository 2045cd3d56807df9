"""The authors-code profile against the authors' own code: NFE of the first plane-vibration
training batches.

    python benchmarks/authors_code.py [--data-root DIR] [--batches 5] [--models node hbnode]
                                      [--profiles authors-code paper] [--tol 1e-7] [--seeds 0]
                                      [--backends torchdiffeq fast] [--authors-dir DIR]

Trains each model on the first ``--batches`` training batches of plane vibration in the
authors' order (batch 64, lr 1e-3, dopri5 at tol 1e-7 unless ``--tol``, adjoint) and prints
the forward and backward NFE per batch, the seconds per step and the loss, beside what the
authors' code takes on this kind of CPU (issue 20, measured on hedixia/HeavyBallNODE at cd1065f: NODE-RNN 1306 / 1420,
HBNODE-RNN 2392 / 1846). Targets under ``authors-code``: forward within 10 %, backward within
25 % (the authors' adjoint integrates every interval with the last gap set, which the profile
does not copy). The authors' model was initialised unseeded, so ``--seeds`` shows how far the
harness's own numbers move from one initialisation (and stamp drop) to another. Times are wall-clock on shared cores: compare them within one run of this script only.

With ``--authors-dir`` (a checkout of hedixia/HeavyBallNODE at cd1065f, its own requirements
installed: einops, imageio, torchvision, matplotlib), the authors' training loop
(``plane_vibration/trainpv.py``: their model, data, shrunk initialisation, Adam, clipping) runs
the same first batches in the same session, and each line also gives the time per evaluation
(seconds per step over forward + backward NFE): the harness's runs' ``per-eval ratio`` is the
authors' time per evaluation over theirs.
"""
from __future__ import annotations

import argparse
import importlib
import itertools
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import torch

from harness import data_root_or_default
from harness.plugins import load_registry
from harness.running.epochs import epoch_record
from harness.running.precision import in_precision
from harness.running.runner import SoloTrainer
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
            tol: float = 1e-7, seed: int = 0, backend: str = "torchdiffeq") -> dict[str, float]:
    """Forward and backward NFE per batch, seconds per step, the training loss (each profile's
    own: the authors' adds a reconstruction term) and forecast MSE over the first batches."""
    registry = load_registry()
    entry = {"task": "plane_vibration", "model": model, "seed": seed, "profile": profile,
             "epochs": 2, "eval_every": 2, "batch_size": 64, "lr": 1e-3,
             "solver": {"method": "dopri5", "tol": tol, "adjoint": True, "backend": backend}}
    (spec,) = suite_from_document({"runs": [entry], "data_root": data_root},
                                  Path("authors_code.yaml"), registry).runs
    trainer = SoloTrainer(spec, registry, CPU)
    with in_precision(spec.precision):
        trainer.build()
        trainer.data = replace(trainer.data, train=FirstBatches(trainer.data.train, batches))
        cpu = time.process_time()
        (trained,) = trainer.train_epoch(1, None)  # epoch 1 only; no evaluation
        cpu = time.process_time() - cpu
    record = epoch_record(trained, spec)
    return {"forward_nfe": record["forward_nfe"], "backward_nfe": record["backward_nfe"],
            "step_s": record["train_time_s"] / record["iterations"], "loss": record["loss"],
            "cpu_step_s": cpu / record["iterations"], "forecast_mse": record["forecast_mse"]}


def measure_authors(model: str, batches: int, authors_dir: str) -> dict[str, float]:
    """Forward and backward NFE per batch and seconds per step of the authors' own training loop
    (``plane_vibration/trainpv.py``, tol 1e-7 as theirs) over their first ``batches`` batches."""
    root = str(Path(authors_dir).resolve())
    if root not in sys.path:
        sys.path.insert(0, root)
    here = os.getcwd()
    os.chdir(root)  # their loader reads ./data/pv.csv
    try:
        code = importlib.import_module(f"plane_vibration.{model}_rnn_pv")
        data = code.pv(input_len=code.seqlen, forecast_len=code.forelen)
    finally:
        os.chdir(here)
    net = code.shrink_parameters(code.MODEL(), 0.01)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    criteria = torch.nn.MSELoss()
    forward = backward = 0
    start, cpu = time.perf_counter(), time.process_time()
    for b in range(0, batches * 64, 64):
        net.cell.nfe = 0
        net.zero_grad()
        init, predict, forecast = net(data.train_times[:, b:b + 64], data.train_x[:, b:b + 64],
                                      multiforecast=torch.arange(code.forelen))
        loss = criteria(predict, data.train_y[:, b:b + 64]) + criteria(init, data.train_x[:, b:b + 64])
        total = loss * 0.1 + criteria(forecast, data.trext[:, b:b + 64])
        forward += net.cell.nfe
        net.cell.nfe = 0
        total.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        backward += net.cell.nfe
    return {"forward_nfe": forward / batches, "backward_nfe": backward / batches,
            "step_s": (time.perf_counter() - start) / batches,
            "cpu_step_s": (time.process_time() - cpu) / batches}


def per_evaluation(got: dict[str, float], clock: str = "step_s") -> float:
    """Seconds per evaluation of a training step: its time (wall-clock, or with ``clock``
    "cpu_step_s" this process's CPU time) over its forward + backward NFE."""
    return got[clock] / (got["forward_nfe"] + got["backward_nfe"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=["node", "hbnode"])
    parser.add_argument("--profiles", nargs="+", default=["authors-code"])
    parser.add_argument("--tol", type=float, default=1e-7)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="initialisations (the stamps dropped follow the seed too)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--backends", nargs="+", default=["torchdiffeq"])
    parser.add_argument("--authors-dir", default=None,
                        help="a checkout of hedixia/HeavyBallNODE: run its loop side by side")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"load: {os.getloadavg()[0]:.1f}; first {args.batches} plane-vibration batches, "
          f"tol {args.tol:g}, {torch.get_num_threads()} threads")
    print(f"{'profile':<13}{'backend':<12}{'model':<8}{'seed':>5}{'fwd NFE':>9}{'bwd NFE':>9}"
          f"{'authors':>13}{'fwd ratio':>11}{'bwd ratio':>11}{'s/step':>8}{'ms/eval':>9}"
          f"{'per-eval ratio':>16}{'cpu ms/eval':>12}{'cpu ratio':>10}{'loss':>9}{'forecast':>10}")
    for model in args.models:
        authors = measure_authors(model, args.batches, args.authors_dir) if args.authors_dir else None
        if authors:
            print(f"{'(authors)':<13}{'torchdiffeq':<12}{model:<8}{'':>5}"
                  f"{authors['forward_nfe']:>9.0f}{authors['backward_nfe']:>9.0f}{'':>35}"
                  f"{authors['step_s']:>8.2f}{per_evaluation(authors) * 1e3:>9.3f}{'':>16}"
                  f"{per_evaluation(authors, 'cpu_step_s') * 1e3:>12.3f}", flush=True)
        for profile, backend, seed in itertools.product(args.profiles, args.backends, args.seeds):
            got = measure(model, profile, args.batches, str(data_root_or_default(args.data_root)),
                          args.tol, seed, backend)
            forward, backward = AUTHORS.get(model, (float("nan"), float("nan")))
            ratio, cpu_ratio = ((per_evaluation(authors, clock) / per_evaluation(got, clock)
                                 for clock in ("step_s", "cpu_step_s")) if authors
                                else (float("nan"), float("nan")))
            print(f"{profile:<13}{backend:<12}{model:<8}{seed:>5}{got['forward_nfe']:>9.0f}"
                  f"{got['backward_nfe']:>9.0f}"
                  f"{f'{forward}/{backward}':>13}{got['forward_nfe'] / forward:>11.2f}"
                  f"{got['backward_nfe'] / backward:>11.2f}{got['step_s']:>8.2f}"
                  f"{per_evaluation(got) * 1e3:>9.3f}{ratio:>15.2f}×"
                  f"{per_evaluation(got, 'cpu_step_s') * 1e3:>12.3f}{cpu_ratio:>9.2f}×{got['loss']:>9.4f}"
                  f"{got['forecast_mse']:>10.4f}",
                  flush=True)

if __name__ == "__main__":
    main()
