"""The spirals task (Chen et al. 2018, §5.1): the data's stated statistics, the ELBO's pieces
against closed forms, the solve through irregular stamps, the stated widths, and that the
predictive RMSE falls in a tiny run."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.distributions import Normal, kl_divergence

from harness.reports import path_figures
from harness.reports.aggregate import group_runs
from harness.running.runner import build_run, count_parameters, execute_run
from harness.suites.loader import suite_from_document
from harness.solvers.settings import SolverConfig
from harness.toolkit import Autonomous
from harness.toolkit.nfe import NFECounter
from harness.toolkit.ode import ODEBlock
from harness_plugins.models.node import NODE
from harness_plugins.tasks.latent_ode import (gaussian_kl, gaussian_log_likelihood,
                                              negative_elbo, solve_at, spiral_metrics)
from harness_plugins.tasks.spiral_baselines import SeriesRNN, time_order
from harness_plugins.tasks.spiral_data import HELD_OUT, OBSERVED, generate, held_out_stamps, pack
from harness_plugins.tasks.spirals import SpiralsTask
from tests.conftest import CPU, FAMILIES, make_spec
from tests.result_records import epoch, record

OPTIONS = SpiralsTask.options


def spirals(**options):
    return generate({**OPTIONS, **options}, data_seed=3)


def test_counts_and_half_clockwise():
    data = spirals()
    assert data.clean.shape == data.noisy.shape == (1000, 200, 2)
    assert data.times.shape == (200,)
    assert data.observed.shape == (1000, 30)
    assert int(data.clockwise.sum()) == 500
    assert int(spirals(spirals=7).clockwise.sum()) == 3


def test_clockwise_spirals_turn_clockwise():
    """The sign of the cross product of successive clean points is the turning direction."""
    data = spirals(spirals=50)
    a, b = data.clean[:, :-1], data.clean[:, 1:]
    cross = a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
    assert (cross[data.clockwise] < 0).all() and (cross[~data.clockwise] > 0).all()


def test_points_lie_on_the_archimedean_spiral(float64):
    """r = a + b·θ with θ advancing at unit speed: the radius grows by b per unit of time
    (in float64: float32 rounds the radius differences between close stamps)."""
    data = spirals(spirals=20)
    radius = data.clean.norm(dim=-1)
    slope = (radius[:, 1:] - radius[:, :-1]) / (data.times[1:] - data.times[:-1])
    torch.testing.assert_close(slope, torch.full_like(slope, OPTIONS["b"]))
    assert (radius[:, 0] >= OPTIONS["b"] * OPTIONS["start_min"]).all()
    assert (radius[:, 0] <= OPTIONS["b"] * (OPTIONS["start_max"] + OPTIONS["span"])).all()


def test_time_stamps_sorted_irregular_in_their_windows():
    data = spirals()
    window, held_out = data.times[:100], data.times[100:]
    span = OPTIONS["span"]
    assert (window.diff() > 0).all() and (held_out.diff() > 0).all()
    assert window.min() >= 0 and window.max() <= span
    assert held_out.min() > span and held_out.max() <= 2 * span
    gaps = window.diff()
    assert gaps.std() > 0.3 * gaps.mean()  # uniform draws: gaps spread like an exponential's


def test_each_spiral_observes_its_own_sorted_subset_of_the_window():
    data = spirals(observations=50)
    assert (data.observed.diff(dim=1) > 0).all()  # sorted, no stamp twice
    assert data.observed.min() >= 0 and data.observed.max() < 100
    assert len({tuple(row.tolist()) for row in data.observed}) == 1000
    assert (spirals(observations=100).observed == torch.arange(100)).all()


def test_noise_has_the_stated_std():
    data = spirals(noise=0.25)
    residual = data.noisy - data.clean
    assert abs(float(residual.std()) - 0.25) < 0.005  # 400,000 draws: std error ≈ 0.0003
    assert abs(float(residual.mean())) < 0.005


def test_data_are_determined_by_the_seed():
    a, b = spirals(spirals=10), spirals(spirals=10)
    c = generate({**OPTIONS, "spirals": 10}, data_seed=4)
    assert torch.equal(a.noisy, b.noisy) and torch.equal(a.observed, b.observed)
    assert not torch.equal(a.noisy, c.noisy)


@pytest.mark.parametrize("key, value, valid", [("observations", 101, "1 to 100"),
                                                ("spirals", 0, ">= 1"), ("noise", 0.0, "> 0")])
def test_bad_options_are_named(key, value, valid):
    with pytest.raises(ValueError, match=rf"task_options\.{key}: .*valid: .*{valid}"):
        spirals(**{key: value})


def test_packed_rows_hold_the_observations_then_the_held_out_stamps():
    data = spirals(spirals=5, observations=10)
    x, y = pack(data, held_out_stamps(data))
    assert x.shape == (5, 110, 4) and y.shape == (5, 110, 6)
    assert (x[:, :10, 1] == 1).all() and (x[:, 10:, 1] == 0).all() and (x[:, 10:, 2:] == 0).all()
    torch.testing.assert_close(x[:, :10, 0], data.times[data.observed])
    torch.testing.assert_close(x[2, :10, 2:], data.noisy[2, data.observed[2]])
    assert (y[:, :10, 0] == OBSERVED).all() and (y[:, 10:, 0] == HELD_OUT).all()
    torch.testing.assert_close(y[:, 10:, 4:], data.clean[:, 100:])


# --- the ELBO's pieces --------------------------------------------------------------------------


def test_kl_is_the_closed_form_of_torch_distributions():
    torch.manual_seed(0)
    mean, logvar = torch.randn(6, 4), torch.randn(6, 4)
    expected = kl_divergence(Normal(mean, (0.5 * logvar).exp()),
                             Normal(torch.zeros(4), torch.ones(4))).sum(dim=-1)
    torch.testing.assert_close(gaussian_kl(mean, logvar), expected)
    assert torch.equal(gaussian_kl(torch.zeros(2, 4), torch.zeros(2, 4)), torch.zeros(2))


def test_log_likelihood_is_the_gaussian_density():
    torch.manual_seed(1)
    x, mean, std = torch.randn(5, 2), torch.randn(5, 2), torch.rand(5, 2) + 0.1
    torch.testing.assert_close(gaussian_log_likelihood(x, mean, std),
                               Normal(mean, std).log_prob(x))


def test_negative_elbo_counts_observed_rows_and_the_kl_once_per_spiral():
    """Two spirals, three rows each (two observed, one held out): −ELBO by hand."""
    torch.manual_seed(2)
    means, values, clean = torch.randn(2, 3, 2), torch.randn(2, 3, 2), torch.randn(2, 3, 2)
    kl = torch.tensor([0.7, 1.9])
    prediction = torch.cat([means, kl[:, None, None].expand(2, 3, 1)], dim=-1)
    role = torch.tensor([OBSERVED, OBSERVED, HELD_OUT], dtype=torch.float).expand(2, 3)
    target = torch.cat([role[..., None], torch.full((2, 3, 1), 0.3), values, clean], dim=-1)
    log_p = Normal(means[:, :2], 0.3).log_prob(values[:, :2]).sum(dim=(1, 2))
    torch.testing.assert_close(negative_elbo(prediction, target), (kl - log_p).mean())
    metrics = spiral_metrics(prediction, target)
    assert metrics["rmse"] == pytest.approx(float((means[:, 2] - clean[:, 2]).pow(2).mean().sqrt()))
    assert metrics["rmse_noisy"] == pytest.approx(
        float((means[:, 2] - values[:, 2]).pow(2).mean().sqrt()))
    assert metrics["kl"] == pytest.approx(1.3)


# --- the solve through irregular stamps ---------------------------------------------------------


@pytest.mark.parametrize("first", [0.0, 0.2])
def test_states_at_each_rows_own_stamps(first, float64):
    """A linear f: z(t) = exp(tA) z0 at every row's stamps, in any order, repeated or at 0."""
    torch.manual_seed(0)
    linear = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -0.5]]))
    ode = ODEBlock(NODE(), Autonomous(linear),
                   3, SolverConfig(method="dopri5", rtol=1e-9, atol=1e-9), NFECounter())
    z0 = torch.randn(2, 3)
    times = torch.tensor([[first, 0.7, 1.5, 0.7], [2.0, first, 0.3, 1.1]])
    states = solve_at(ode, z0, times)
    expected = torch.stack([torch.stack([torch.linalg.matrix_exp(t * linear.weight) @ z0[i]
                                         for t in row]) for i, row in enumerate(times)])
    torch.testing.assert_close(states, expected, rtol=1e-6, atol=1e-6)


# --- the model ----------------------------------------------------------------------------------


def test_widths_and_parameter_count_as_stated(registry):
    """RNN of 25 units → (μ, log σ²) of a 4-d latent, f with one hidden layer of 20, decoder
    with one hidden layer of 20: 725 + 208 + 184 + 142 = 1,259 parameters for NODE."""
    built = build_run(make_spec(task="spirals", model="node"), registry, CPU)
    model = built.model
    assert (model.encoder.step.in_features, model.encoder.step.out_features) == (2 + 1 + 25, 25)
    assert (model.encoder.out.in_features, model.encoder.out.out_features) == (25, 2 * 4)
    f = [m for m in model.ode.dynamics.f.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in f] == [(4, 20), (20, 4)]
    decoder = [m for m in model.decoder.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in decoder] == [(4, 20), (20, 2)]
    assert count_parameters(model) == 1259


@pytest.mark.parametrize("model", FAMILIES)
def test_every_family_predicts_every_row(registry, model):
    built = build_run(make_spec(task="spirals", model=model), registry, CPU)
    data = spirals(spirals=4, observations=10)
    x, _ = pack(data, held_out_stamps(data))
    built.model.eval()
    with torch.no_grad():
        prediction = built.model(x)
    assert prediction.shape == (4, 110, 3) and torch.isfinite(prediction).all()


def test_rmse_falls_in_a_tiny_run(registry):
    """Windows of half a radian, so that 40 epochs learn the continuation (measured: the
    held-out RMSE went from 1.80 to 1.14)."""
    spec = make_spec(task="spirals", model="node", epochs=40, lr=0.03, batch_size=None,
                     solver={"adjoint": False, "rtol": 1e-4, "atol": 1e-4},
                     task_options={"spirals": 64, "stamps": 30, "observations": 15, "span": 0.5,
                                   "figure_epochs": [40], "figure_spirals": 2})
    record = execute_run(spec, registry, CPU)
    assert record["status"] == "ok", record["error"]
    first, last = record["epochs"][0], record["epochs"][-1]
    assert last["loss"] < 0.5 * first["loss"]
    assert last["test_rmse"] < 0.75 * first["test_rmse"]
    paths = last["spiral_paths"]
    assert len(paths) == 2 and len(paths[0]["predicted"]) == len(paths[0]["clean"]) == 60
    assert len(paths[0]["observed"]) == 15 and paths[0]["split"] == 30
    assert not any("spiral_paths" in epoch for epoch in record["epochs"][:-1])
    assert math.isfinite(last["test_rmse"])


# --- the figure ---------------------------------------------------------------------------------


def paths(shift: float) -> list[dict]:
    """One recorded spiral: 4 stamps (2 in the window), 2 observed, predicted = clean + shift."""
    clean = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]
    return [{"clockwise": False, "split": 2, "times": [0.1, 0.5, 1.2, 1.9],
             "observed": [[1.1, 0.0], [0.0, 0.9]], "clean": clean,
             "predicted": [[x + shift, y] for x, y in clean]}]


def test_figure_draws_each_models_reconstruction_and_extrapolation(tmp_path):
    runs = [record("spirals", "node", 0, [epoch(1), epoch(2, spiral_paths=paths(0.1))]),
            record("spirals", "hbnode", 0, [epoch(2, spiral_paths=paths(0.2))]),
            record("spirals", "sonode", 1, [epoch(2, spiral_paths=paths(0.3))])]
    figure = path_figures.spiral_paths(group_runs(runs), tmp_path, ("png",))
    (panel,) = figure.panels
    assert set(panel.reconstructed) == {"node", "hbnode"}  # sonode's seed 1 has other spirals
    assert panel.clean == paths(0)[0]["clean"] and panel.observed == [[1.1, 0.0], [0.0, 0.9]]
    assert panel.reconstructed["node"] == [[1.1, 0.0], [0.1, 1.0]]  # the window's two stamps
    assert panel.extrapolated["node"] == [[0.1, 1.0], [-0.9, 0.0], [0.1, -1.0]]  # from its last
    assert panel.reconstructed["hbnode"][0] == [1.2, 0.0]
    assert figure.files[0].name == "spirals.png" and figure.files[0].stat().st_size > 0
    assert path_figures.spiral_paths(group_runs([runs[0] | {"epochs": [epoch(1)]}]), tmp_path,
                                     ("png",)) is None


def test_figure_has_a_row_per_setting(tmp_path):
    runs = [record("spirals", "node", 0, [epoch(1, spiral_paths=paths(0.1) * 2)],
                   config={"task_options": {"observations": n}}) for n in (30, 100)]
    for run, n in zip(runs, (30, 100)):
        run["key"] += f"/{n}"
    figure = path_figures.spiral_paths(group_runs(runs), tmp_path, ("png",))
    assert [(p.setting, p.series) for p in figure.panels] == [
        ("observations=30", 1), ("observations=30", 2), ("observations=100", 1),
        ("observations=100", 2)]


# --- the RNN baselines --------------------------------------------------------------------------


def baseline_run(registry, name: str, **settings):
    entry = {"task": "spirals", "baselines": [name], "epochs": 2, **settings}
    (spec,) = suite_from_document({"name": "b", "runs": [entry]}, Path("b.yaml"), registry).runs
    return spec


@pytest.mark.parametrize("name, inputs, count", [("rnn", 2, 752), ("rnn_dt", 3, 777)])
def test_baselines_widths_and_counts(registry, name, inputs, count):
    """An RNN of 25 units reading the previous point (and, for rnn_dt, the time since it)."""
    built = build_run(baseline_run(registry, name), registry, CPU)
    assert (built.model.step.in_features, built.model.step.out_features) == (inputs + 25, 25)
    assert count_parameters(built.model) == count


def test_rows_are_read_in_time_order_observed_first():
    times = torch.tensor([[0.5, 0.1, 0.5, 0.3]])
    observed = torch.tensor([[0.0, 1.0, 1.0, 0.0]])
    assert time_order(times, observed).tolist() == [[1, 3, 2, 0]]


def test_rnn_forecasts_from_the_past_only_and_runs_on_its_own_predictions():
    """A prediction never reads its own row's point; past the observations, each query row's
    prediction is the next input; the rows come back in the batch's order."""
    torch.manual_seed(0)
    model = SeriesRNN(2, 5, with_time=True)
    data = spirals(spirals=3, stamps=10, observations=4)
    x, _ = pack(data, held_out_stamps(data))
    prediction = model(x)
    changed = x.clone()
    changed[:, 3, 2:] += 1.0  # the last observation
    after = model(changed)
    torch.testing.assert_close(after[:, :4], prediction[:, :4])  # rows up to it: unchanged
    assert not torch.allclose(after[:, 4:], prediction[:, 4:])    # the forecast reads it
    shuffled = torch.randperm(x.shape[1])
    torch.testing.assert_close(model(x[:, shuffled]), prediction[:, shuffled])
    assert (prediction[..., 2] == 0).all()  # no KL: the loss is the Gaussian NLL alone


@pytest.mark.parametrize("name", ["rnn", "rnn_dt"])
def test_baseline_trains_and_records_paths(registry, name):
    spec = baseline_run(registry, name, batch_size=None, lr=0.03,
                        task_options={"spirals": 32, "stamps": 20, "observations": 10,
                                      "figure_epochs": [2], "figure_spirals": 1})
    record = execute_run(spec, registry, CPU)
    assert record["status"] == "ok", record["error"]
    assert record["kind"] == "baseline" and record["epochs"][-1]["forward_nfe"] is None
    assert record["epochs"][-1]["loss"] < record["epochs"][0]["loss"]
    assert len(record["epochs"][-1]["spiral_paths"][0]["predicted"]) == 40
