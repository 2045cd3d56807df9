"""ANODE (Dupont et al. 2019): NODE on x padded with p zero channels, h0 = [x, 0].

The dynamics and the initial state (``{"h": "input+zeros"}``) are NODE's; what differs is the
width n > c that tasks give it, whose channels after x start at zero.
"""
from __future__ import annotations

from harness import Family, hookimpl
from harness_plugins.models.node import NODE


class ANODE(NODE):
    name = "anode"
    derivatives_vjp = NODE.derivatives_vjp  # the dynamics are NODE's
    vjp_unsummed = True


@hookimpl
def harness_model_families() -> list[type[Family]]:
    return [ANODE]
