"""The spirals latent ODE's predictive RMSE against training iterations, and where its error lies.

    OMP_NUM_THREADS=1 python benchmarks/spirals_curve.py [--spirals 1000] [--observations 30]
        [--iterations 600] [--every 50] [--batch-size N] [--model node] [--seed 0] [--lr 0.01]

Trains one run of the ``spirals`` task with the harness's own training loop (what ``harness
run`` does for it: Adam at lr 0.01 unless ``--lr``, dopri5 at tol 1e-5, backpropagation through
the solver; full batch unless ``--batch-size``) and after every ``--every`` iterations prints the held-out
RMSE against the clean spiral with z0 the posterior mean (the task's ``rmse``) and with z0
sampled, the reconstruction RMSE, the held-out RMSE in each quarter of the held-out window, and
apart at the held-out points whose angle no spiral's observation window shows (past the
largest start angle plus the window) and at the others. The first line gives the RMSE of
predicting the origin at every held-out stamp, the level of a model that has learned nothing.
docs/spirals.md quotes its numbers.
"""
from __future__ import annotations

import argparse
import os

import torch
from torch import Tensor

from harness.plugins import load_registry
from harness.running.runner import SoloTrainer
from harness.suites.runspec import RunSpec, default_settings
from harness_plugins.tasks.latent_ode import spiral_metrics
from harness_plugins.tasks.spiral_data import Spirals, held_out_stamps, pack

CPU = torch.device("cpu")


def unseen(spirals: Spirals, a: float, b: float) -> Tensor:
    """(N, held-out stamps) True where the point's angle lies past every observation window's."""
    stamps = len(spirals.times) // 2
    start = (spirals.clean[:, 0].norm(dim=-1) - a) / b - spirals.times[0]
    last_seen = start.max() + spirals.times[:stamps].max()
    return start[:, None] + spirals.times[stamps:][None] > last_seen


def diagnose(model: torch.nn.Module, spirals: Spirals, beyond: Tensor) -> str:
    """One line: the RMSEs this script prints (module docstring)."""
    x, y = pack(spirals, held_out_stamps(spirals))
    n = spirals.observed.shape[1]
    with torch.no_grad(), torch.random.fork_rng():  # the training's draws stay as a run's
        model.eval()
        mean = model(x)
        model.train()
        sampled = model(x)
    metrics = spiral_metrics(mean, y)
    error = (mean[:, n:, :2] - y[:, n:, 4:6]).pow(2).mean(dim=-1)  # (N, held-out stamps)
    quarters = [part.mean().sqrt().item() for part in error.chunk(4, dim=1)]
    def rms(rows: Tensor) -> float:
        return error[rows].mean().sqrt().item() if rows.any() else float("nan")

    return (f"rmse {metrics['rmse']:.3f} (sampled z0 {spiral_metrics(sampled, y)['rmse']:.3f}) "
            f"reconstruction {metrics['reconstruction_rmse']:.3f} quarters "
            f"{' '.join(f'{q:.2f}' for q in quarters)} unseen angles {rms(beyond):.2f} "
            f"others {rms(~beyond):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spirals", type=int, default=1000)
    parser.add_argument("--observations", type=int, default=30)
    parser.add_argument("--iterations", type=int, default=600)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--model", default="node")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=0.01)
    args = parser.parse_args()
    settings = default_settings()
    settings.update(epochs=args.iterations, lr=args.lr, batch_size=args.batch_size,
                    task_options={"spirals": args.spirals, "observations": args.observations})
    settings["solver"].update(method="dopri5", rtol=1e-5, atol=1e-5, adjoint=False)
    spec = RunSpec.from_settings("spirals-curve", "spirals", args.model, args.seed, settings)
    trainer = SoloTrainer(spec, load_registry(), CPU)
    trainer.build()
    spirals = trainer.data.spirals
    options = trainer.options
    beyond = unseen(spirals, options["a"], options["b"])
    origin = spirals.clean[:, len(spirals.times) // 2:].pow(2).mean().sqrt().item()
    print(f"load {os.getloadavg()[0]:.1f}, {torch.get_num_threads()} threads; {args.model}, "
          f"{args.spirals} spirals, n = {args.observations}; predicting the origin: rmse "
          f"{origin:.3f}; held-out points at unseen angles: {beyond.float().mean().item():.1%}")
    iterations, epoch = 0, 0
    while iterations < args.iterations:
        epoch += 1
        trained = trainer.train_epoch(epoch, None)[0]
        before, iterations = iterations, iterations + trained.iterations
        if iterations // args.every > before // args.every or iterations >= args.iterations:
            loss = trained.sums["loss"] / trained.samples
            print(f"iteration {iterations:5d} loss {loss:9.1f} "
                  f"{diagnose(trainer.built.model, spirals, beyond)}", flush=True)


if __name__ == "__main__":
    main()
