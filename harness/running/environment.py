"""What a result was measured with: library versions, device, git revision."""
from __future__ import annotations

import functools
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from harness.solvers.backends import SolverBackend


def resolve_device(choice: str = "auto") -> torch.device:
    """"auto" picks CUDA when there is a GPU, else the CPU."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(choice)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA device")
    return device


def environment(device: torch.device, backend: SolverBackend) -> dict[str, Any]:
    """The environment block of a result record; ``backend`` is the run's solver backend,
    recorded with the version of the package providing it."""
    return {**_static_environment(), "device": str(device), "device_name": _device_name(device),
            "solver_backend": {"name": backend.name, "package": backend.package,
                               "version": backend.version}}


@functools.cache
def _static_environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchdiffeq": _version("torchdiffeq"),
        "harness": _version("harness"),
        "git_revision": git_revision(),
        "torch_threads": torch.get_num_threads(),
        "argv": sys.argv,
    }


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _device_name(device: torch.device) -> str:
    """The GPU's or CPU's name; a GPU this process cannot see (the record of a run lost on
    another machine, made by a driver without one) is "unknown"."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device) if torch.cuda.is_available() else "unknown"
    return platform.processor() or platform.machine()


def git_revision() -> str | None:
    """The harness checkout's commit, with "-dirty" when it has uncommitted changes."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                                text=True, timeout=5)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
