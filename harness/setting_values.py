"""The values three run settings take, each with what it means: a run's ``profile`` (whose
settings it follows), its ``precision`` (and the torch dtype it runs in) and its model's
``kind`` (a family or a baseline).

The contract names them (a task's :attr:`harness.Task.profiles`, :attr:`harness.Task.baselines`,
the dtype a task makes its tensors in); the run settings (:mod:`harness.suites.runspec`) check
against them and the runner applies them. Nothing of the harness is imported here.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

import torch

#: Whose settings a run follows where the paper's text and the code that drew its figures differ
#: (run setting ``profile``). A task declares what each profile other than "paper" changes for
#: it in :attr:`harness.Task.profiles`; docs/profiles.md lists every difference and its source.
PROFILES: Mapping[str, str] = MappingProxyType({
    "paper": "the paper's text (the default)",
    "authors-code": "the authors' code (hedixia/HeavyBallNODE), where it differs from the text, "
                    "without its bugs",
})

#: A run's floating-point precision (run setting ``precision``) and its torch dtype. While a
#: run's data and model are made and while it trains, the harness makes it torch's default
#: dtype, so a task makes its floating tensors in ``torch.get_default_dtype()`` (``torch.randn``,
#: ``torch.tensor`` of floats and ``nn.Linear`` do by themselves). The half precisions run on
#: a CUDA device only.
PRECISIONS: Mapping[str, torch.dtype] = MappingProxyType({
    "float32": torch.float32, "float64": torch.float64,
    "bfloat16": torch.bfloat16, "float16": torch.float16,
})

#: What a run's model is (``kind`` in a run's key, record and report label): an ODE family
#: around the task's networks, or a baseline the task builds whole
#: (:attr:`harness.Task.baselines`).
MODEL_KINDS: Mapping[str, str] = MappingProxyType({
    "family": "a model family (a plugin's Family) around the task's networks, solved by the "
              "run's ODE solver",
    "baseline": "a model the task itself builds (Task.build_baseline), with no ODE family: "
                "its records hold no NFE, unless it counts its evaluations (a fixed-step "
                "Runge-Kutta solve: harness.toolkit.CountsEvaluations)",
})
