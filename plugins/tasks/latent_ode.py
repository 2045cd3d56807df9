"""The latent ODE of the neural ODE paper (Chen et al. 2018, §5, Fig. 6): an RNN run backwards
over the observations gives q(z0 | x) = N(μ, diag σ²); z0 (sampled in training, μ in
evaluation) starts the family's state, which the family's dynamics carry through every stamp
asked for; a decoder maps the readout part to the point. Training maximises the ELBO
log p(x | z) − KL(q(z0) ‖ N(0, I)) with a Gaussian likelihood of the data's noise std.

A prediction is packed row for row with the target (:mod:`harness_plugins.tasks.spiral_data`):
(batch, rows, 3), ``[x, y, kl]``, the decoded mean at each row's stamp and, repeated on every
row, the spiral's KL term (the loss needs it, and the runner hands the loss one tensor).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from harness.toolkit import ODEBlock
from harness_plugins.tasks.spiral_data import HELD_OUT, OBSERVED


def gaussian_kl(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)) per row: ½ Σ (μ² + σ² − 1 − log σ²)."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=-1)


def gaussian_log_likelihood(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """log N(x | μ, σ²) per coordinate: −½ ((x − μ)/σ)² − log σ − ½ log 2π."""
    return -0.5 * ((x - mean) / std).pow(2) - torch.log(std) - 0.5 * math.log(2 * math.pi)


class BackwardRNN(nn.Module):
    """The recognition RNN: h ← tanh(W [x_i, t_i, h] + b) from the last observation to the
    first, then (μ, log σ²) = W' h + b'. Each observation is read with its time stamp, which an
    irregularly sampled series needs to be read at all."""

    def __init__(self, features: int, hidden: int, latent: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.step = nn.Linear(features + 1 + hidden, hidden)
        self.out = nn.Linear(hidden, 2 * latent)

    def forward(self, values: Tensor, times: Tensor) -> tuple[Tensor, Tensor]:
        """(μ, log σ²) from observations (batch, T, features) at times (batch, T)."""
        h = values.new_zeros(values.shape[0], self.hidden)
        for i in reversed(range(values.shape[1])):
            h = torch.tanh(self.step(torch.cat([values[:, i], times[:, i, None], h], dim=1)))
        return self.out(h).chunk(2, dim=1)


def solve_at(ode: ODEBlock, z0: Tensor, times: Tensor) -> Tensor:
    """The states (batch, rows, …) at each element's stamps ``times`` (batch, rows, ≥ 0) of
    the trajectories from z0 at time 0: one solve through the sorted union of the batch's
    stamps (``ode.through``), each row then picking its own."""
    grid, index = torch.unique(times, sorted=True, return_inverse=True)
    starts_later = bool(grid[0] > 0)
    offsets = torch.cat([grid.new_zeros(1), grid]) if starts_later else grid
    states = z0[None]
    if len(offsets) > 1:
        states = torch.cat([states, ode.through(z0, offsets)])
    rows = torch.arange(len(z0), device=z0.device)[:, None]
    return states[index + int(starts_later), rows]


class LatentODE(nn.Module):
    """Encoder → z0 → the family's state → solve through the stamps → decoder."""

    def __init__(self, encoder: BackwardRNN, ode: ODEBlock, decoder: nn.Module,
                 velocity_net: nn.Module | None) -> None:
        super().__init__()
        self.encoder, self.ode, self.decoder = encoder, ode, decoder
        self.velocity_net = velocity_net

    def forward(self, x: Tensor) -> Tensor:
        times, values = x[..., 0], x[..., 2:]
        n = int((x[0, :, 1] > 0.5).sum())
        mean, logvar = self.encoder(values[:, :n], times[:, :n])
        z0 = mean + torch.randn_like(mean) * (0.5 * logvar).exp() if self.training else mean
        states = solve_at(self.ode, self.ode.initial_state(z0, self.velocity_net), times)
        readout = self.ode.part(states.flatten(0, 1)).unflatten(0, states.shape[:2])
        kl = gaussian_kl(mean, logvar)[:, None, None].expand(-1, x.shape[1], 1)
        return torch.cat([self.decoder(readout), kl], dim=-1)


def negative_elbo(prediction: Tensor, target: Tensor) -> Tensor:
    """−ELBO per spiral, averaged over the batch: −Σ log p(observed | z) + KL."""
    observed = (target[..., 0] == OBSERVED)[..., None]
    log_likelihood = gaussian_log_likelihood(target[..., 2:4], prediction[..., :2],
                                             target[..., 1:2])
    return ((-log_likelihood * observed).sum(dim=(1, 2)) + prediction[:, 0, 2]).mean()


def rmse(prediction: Tensor, values: Tensor, rows: Tensor) -> float:
    """The root-mean-square error over the coordinates of the rows selected."""
    return (prediction[rows] - values[rows]).pow(2).mean().sqrt().item()


def spiral_metrics(prediction: Tensor, target: Tensor) -> dict[str, float]:
    """``rmse`` (held-out stamps against the clean spiral, the paper's predictive RMSE),
    ``rmse_noisy`` (against the noisy observations there), ``reconstruction_rmse`` (the
    observed stamps against the clean spiral) and ``kl``; the held-out ones where there are
    held-out rows."""
    means, role = prediction[..., :2], target[..., 0]
    observed, held_out = role == OBSERVED, role == HELD_OUT
    result = {"reconstruction_rmse": rmse(means, target[..., 4:6], observed),
              "kl": prediction[:, 0, 2].mean().item()}
    if held_out.any():
        result.update(rmse=rmse(means, target[..., 4:6], held_out),
                      rmse_noisy=rmse(means, target[..., 2:4], held_out))
    return result
