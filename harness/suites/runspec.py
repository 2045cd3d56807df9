"""A run spec: one fully resolved (task, model, seed, settings) run, and its resume key."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from harness.solvers.settings import SolverConfig

#: Settings every run has before the task's schedule and the suite are applied.
HARNESS_DEFAULTS: dict[str, Any] = {
    "epochs": 10,
    "lr": 1e-3,
    "batch_size": None,
    "optimizer": "adam",
    "solver": {"method": "dopri5", "rtol": 1e-7, "atol": 1e-7, "adjoint": True, "options": {},
               "max_nfe": None, "backend": "torchdiffeq"},
    "widths": None,
    "model_options": {},
    "task_options": {},
    "eval_every": 1,
    "grad_clip": None,
    "time_limit_s": None,
}

#: The optimizers a suite may name (``optimizer:``), and what each builds.
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD,
}


@dataclass(frozen=True)
class RunSpec:
    """Everything one run depends on. ``data_root`` says where data is, not what it is, so it
    is left out of the key; so are the suite's name and the device."""

    suite: str
    task: str
    model: str
    seed: int
    epochs: int
    lr: float
    batch_size: int | None
    optimizer: str
    solver: SolverConfig
    widths: dict[str, int] | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    task_options: dict[str, Any] = field(default_factory=dict)
    eval_every: int = 1
    grad_clip: float | None = None
    time_limit_s: float | None = None
    data_root: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    """Versions of the packages providing the task and the model: part of the key."""

    @classmethod
    def from_settings(cls, suite: str, task: str, model: str, seed: int,
                      settings: dict[str, Any], data_root: str | None = None,
                      versions: dict[str, str] | None = None) -> "RunSpec":
        """Build from resolved settings (keys of :data:`HARNESS_DEFAULTS`)."""
        solver = dict(settings["solver"])
        return cls(suite=suite, task=task, model=model, seed=seed, epochs=settings["epochs"],
                   lr=float(settings["lr"]), batch_size=settings["batch_size"],
                   optimizer=settings["optimizer"], solver=SolverConfig(**solver),
                   widths=settings["widths"], model_options=dict(settings["model_options"]),
                   task_options=dict(settings["task_options"]), eval_every=settings["eval_every"],
                   grad_clip=settings["grad_clip"], time_limit_s=settings["time_limit_s"],
                   data_root=data_root, versions=dict(versions or {}))

    def config(self) -> dict[str, Any]:
        """The resolved configuration, as stored in the result record."""
        return {
            "task": self.task, "model": self.model, "seed": self.seed, "epochs": self.epochs,
            "lr": self.lr, "batch_size": self.batch_size, "optimizer": self.optimizer,
            "solver": self.solver.as_dict(), "widths": self.widths,
            "model_options": self.model_options, "task_options": self.task_options,
            "eval_every": self.eval_every, "grad_clip": self.grad_clip,
            "time_limit_s": self.time_limit_s,
        }

    @property
    def key(self) -> str:
        """Identifies the run across invocations: a hash of the resolved configuration and of
        the plugin versions."""
        config = self.config()
        if config["solver"]["backend"] == "torchdiffeq":  # the default keeps the keys it had
            del config["solver"]["backend"]
        text = json.dumps([config, self.versions], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        return f"{self.task}/{self.model}/seed{self.seed}"
