"""The RNN baselines of the neural ODE paper's spirals experiment (Chen et al. 2018, Table 2):
an RNN, and the RNN with time differences concatenated to its inputs.

Both read a series in time order and predict each stamp's point from what came before:
h_i = tanh(W [v_{i−1}, (Δt_i,) h_{i−1}] + b), prediction_i = W' h_i + b', where v_{i−1} is the
previous stamp's observed point, or the model's own prediction there when it was not observed
(so past the observations the RNN runs on its own forecasts), and Δt_i = t_i − t_{i−1} (the
first stamp's Δt is its time; v_0 = 0). ``rnn`` sees no times at all, only the order; ``rnn_dt``
sees each gap. Rows are taken in time order whatever their order in the batch (observed rows
before query rows at the same stamp) and the predictions put back row for row, packed as the
latent ODE's (:mod:`harness_plugins.tasks.latent_ode`) with a KL term of 0, so the task's
loss is the Gaussian negative log-likelihood of these one-step predictions.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

#: The baselines and their widths: the paper gives no size; 25 hidden units, as its encoder.
BASELINES = {"rnn": {"hidden": 25}, "rnn_dt": {"hidden": 25}}


class SeriesRNN(nn.Module):
    """The RNN forecaster; ``with_time`` concatenates Δt to each input (``rnn_dt``)."""

    def __init__(self, features: int, hidden: int, with_time: bool) -> None:
        super().__init__()
        self.hidden, self.with_time = hidden, with_time
        self.step = nn.Linear(features + int(with_time) + hidden, hidden)
        self.out = nn.Linear(hidden, features)

    def forward(self, x: Tensor) -> Tensor:
        times, observed, values = x[..., 0], x[..., 1], x[..., 2:]
        order = time_order(times, observed)
        times, observed = times.gather(1, order), observed.gather(1, order)
        values = values.gather(1, order[..., None].expand_as(values))
        h = values.new_zeros(len(x), self.hidden)
        previous, before = values.new_zeros(values[:, 0].shape), times.new_zeros(len(x))
        predictions = []
        for i in range(x.shape[1]):
            inputs = [previous, (times[:, i] - before)[:, None]] if self.with_time else [previous]
            h = torch.tanh(self.step(torch.cat([*inputs, h], dim=1)))
            prediction = self.out(h)
            predictions.append(prediction)
            seen = observed[:, i, None] > 0.5
            previous, before = torch.where(seen, values[:, i], prediction), times[:, i]
        stacked = torch.stack(predictions, dim=1)
        rows = torch.empty_like(stacked).scatter_(1, order[..., None].expand_as(stacked), stacked)
        return torch.cat([rows, rows.new_zeros(*rows.shape[:2], 1)], dim=-1)


def time_order(times: Tensor, observed: Tensor) -> Tensor:
    """Per row of the batch, the indices that sort its stamps by time, observed ones first
    among equal times (two stable sorts: by the flag, then by time)."""
    by_flag = torch.sort(1.0 - observed, dim=1, stable=True).indices
    by_time = torch.sort(times.gather(1, by_flag), dim=1, stable=True).indices
    return by_flag.gather(1, by_time)
