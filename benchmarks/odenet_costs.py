"""Where an ODE-Net training step's time goes (docs/odenet.md, "The CPU suite"): the paper's
networks at batch 64 on Fashion-MNIST-shaped input, at task option downscale 1 (28 × 28, the
ODE block on 6 × 6 features) and 2 (14 × 14, 3 × 3 features).

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/odenet_costs.py [--repeats 5] [--threads 1]
        [--data-root DIR]

It prints the load, then per downscale the medians of: the downsampling's forward and forward
+ backward, one evaluation of the ODE block's field f and one vector-Jacobian product of it (what
the adjoint's backward pass takes per evaluation), and one whole training step (forward, loss,
backward, Adam) of ODE-Net (dopri5, tol 1e-3, adjoint: the suites' solver), ResNet and RK-Net,
with the ODE-Net's forward NFE per step. The steps train on the first batch of the suite's
1,024 Fashion-MNIST training images (the NFE depend on the images: on uniform noise they are
some 2.5 times the suite's); the parts' timings use random tensors of the same shapes.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable

import torch

from harness.plugins import Registry, load_registry
from harness.running.runner import build_run
from harness.suites.runspec import RunSpec, default_settings
from harness_plugins.tasks.odenet_networks import FEATURES, ODEFunc, downsampling

BATCH = 64


def median_ms(step: Callable[[], object], repeats: int) -> float:
    """The median wall time of ``step`` in milliseconds, after one call to warm up."""
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def parts(downscale: int, repeats: int) -> dict[str, float]:
    """The downsampling's and the field's costs at this downscale."""
    x = torch.nn.functional.avg_pool2d(torch.rand(BATCH, 1, 28, 28), downscale)
    down = downsampling(1)
    with torch.no_grad():
        features = down(x)
    field, t = ODEFunc(FEATURES, FEATURES, FEATURES), torch.tensor(0.5)
    z = features.clone().requires_grad_()

    def vjp() -> None:
        out = field(t, z)
        torch.autograd.grad(out, [z, *field.parameters()], torch.ones_like(out))

    with torch.no_grad():
        costs = {"downsampling forward": median_ms(lambda: down(x), repeats),
                 "f forward": median_ms(lambda: field(t, features), repeats)}
    costs["downsampling forward+backward"] = median_ms(lambda: down(x).sum().backward(), repeats)
    costs["f vjp"] = median_ms(vjp, repeats)
    return costs


def training_step(registry: Registry, model: str, kind: str, downscale: int, repeats: int,
                  data_root: str | None) -> tuple[float, float]:
    """(median ms, forward NFE per step) of one training step of ``model``."""
    settings = default_settings()
    settings.update({"batch_size": BATCH,
                     "task_options": {"downscale": downscale, "train_size": 1024}})
    settings["solver"].update({"method": "dopri5", "rtol": 1e-3, "atol": 1e-3, "adjoint": True})
    spec = RunSpec.from_settings("costs", "fashion_mnist_odenet", model, 0, settings, kind=kind)
    cpu = torch.device("cpu")
    built = build_run(spec, registry, cpu)
    optimizer = torch.optim.Adam(built.model.parameters(), 1e-3)
    options = {**built.task.options, **spec.task_options}
    x, y = next(iter(built.task.data(options, 0, data_root, cpu, BATCH).train))

    def step() -> None:
        optimizer.zero_grad()
        with built.counter.in_phase("forward"):
            loss = built.task.loss(built.model(x), y)
        with built.counter.in_phase("backward"):  # the adjoint's evaluations
            loss.backward()
        optimizer.step()

    milliseconds = median_ms(step, repeats)
    forward = built.counter.take().get("forward", 0)
    return milliseconds, forward / (repeats + 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-root", default=None,
                        help="where Fashion-MNIST is (default: the harness's data root)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; {args.threads} "
          f"thread(s), medians of {args.repeats}; batch {BATCH}")
    registry = load_registry()
    for downscale in (1, 2):
        side = 28 // downscale
        print(f"\ndownscale {downscale}: {side} x {side} images")
        for name, ms in parts(downscale, args.repeats).items():
            print(f"  {name:32s} {ms:8.1f} ms")
        for model, kind in (("node", "family"), ("resnet", "baseline"), ("rknet", "baseline")):
            ms, nfe = training_step(registry, model, kind, downscale, args.repeats,
                                     args.data_root)
            nfe_text = f"  (forward NFE {nfe:.1f})" if model == "node" else ""
            print(f"  training step, {model:22s} {ms:8.1f} ms{nfe_text}")


if __name__ == "__main__":
    main()
