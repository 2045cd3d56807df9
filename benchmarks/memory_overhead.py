"""What measuring memory costs a CPU training step (``memory: true``, docs/memory.md).

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/memory_overhead.py [--width 8] [--batch 30]
                                                                      [--steps 16] [--repeats 15]

Times a training step (an RK4 solve over [0, 1] through a two-hidden-layer MLP, backpropagated
through the solver) with and without :class:`harness.toolkit.memory.MemoryMeter`, interleaved,
in process CPU time (less sensitive to other processes than wall time), and prints the best of
``--repeats`` of each and the peaks the meter measured.
"""
from __future__ import annotations

import argparse
import time

import torch
from torchdiffeq import odeint

from harness.toolkit.memory import MemoryMeter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--batch", type=int, default=30)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, args.width), torch.nn.ELU(),
                              torch.nn.Linear(args.width, args.width), torch.nn.ELU(),
                              torch.nn.Linear(args.width, 2))
    y0, interval = torch.randn(args.batch, 2), torch.tensor([0.0, 1.0])
    options = {"step_size": 1 / args.steps}

    def step(meter: MemoryMeter) -> None:
        with meter.in_phase("forward"):
            y = odeint(lambda t, y: net(y), y0, interval, method="rk4", options=options)[-1]
        with meter.in_phase("backward"):
            y.pow(2).sum().backward()

    meters = {False: MemoryMeter(torch.device("cpu"), enabled=False),
              True: MemoryMeter(torch.device("cpu"))}
    best = {False: float("inf"), True: float("inf")}
    for _ in range(args.repeats):
        for measured, meter in meters.items():
            start = time.process_time()
            for _ in range(5):
                step(meter)
            best[measured] = min(best[measured], (time.process_time() - start) / 5)
    print(f"width {args.width}, batch {args.batch}, {args.steps} steps: "
          f"{best[False] * 1e3:.2f} ms without the meter, {best[True] * 1e3:.2f} ms with it "
          f"(+{(best[True] / best[False] - 1) * 100:.0f} %); peaks {meters[True].take()}")


if __name__ == "__main__":
    main()
