"""Fitting an exponential rate to a curve of norms, for summaries of growth and decay."""
from __future__ import annotations

import math
from typing import Sequence


def exponential_rate(values: Sequence[float]) -> float | None:
    """r of the least-squares fit log v_i ≈ c + r·i over the positive finite values (None with
    fewer than two): the curve grows by e^r per step (shrinks for r < 0)."""
    points = [(i, math.log(v)) for i, v in enumerate(values) if v > 0 and math.isfinite(v)]
    if len(points) < 2:
        return None
    mean_i = sum(i for i, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    return (sum((i - mean_i) * (y - mean_y) for i, y in points)
            / sum((i - mean_i) ** 2 for i, _ in points))
