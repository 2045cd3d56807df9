"""Sequence data and tasks: packing, dropped stamps, loaders on files in the real formats,
splits, parameter counts, and a tiny training run of every family on each task."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from harness import DataNotFound
from harness.running.runner import build_run, count_parameters, execute_run
from harness.solvers.settings import SolverConfig
from harness.toolkit.irregular import gaps, keep_stamps, window_starts
from harness.toolkit.nfe import NFECounter
from harness.toolkit.ode import ODEBlock
from harness.toolkit.sequences import (FORECAST, ONE_STEP, pack_inputs, pack_targets, sequence_loss,
                               sequence_metrics, unpack_inputs)
from harness_plugins.models.node import NODE
from harness_plugins.tasks import sequence_files
from harness_plugins.tasks.plane_vibration import HORIZON, INPUTS, PlaneVibration
from harness_plugins.tasks.sequence_files import (locate, read_plane_vibration,
                                                  read_rollout, read_silverbox, walker_files)
from harness_plugins.tasks.silverbox import ForcedTrajectory
from harness_plugins.tasks.walker2d import Walker2D, split_files
from tests.conftest import CPU, FAMILIES, make_spec
from tests.sequence_files import SHARED_DATA
from tests.sequence_files import sha256 as trusted_sha256
from tests.sequence_files import (trust_written, write_plane_vibration, write_silverbox,
                                  write_walker)

# --- Packing ----------------------------------------------------------------------------------


def test_inputs_round_trip_through_the_packed_layout():
    features, elapsed = torch.randn(3, 5, 4), torch.rand(3, 5)
    queries = torch.rand(3, 2)
    unpacked = unpack_inputs(pack_inputs(features, elapsed, queries))
    assert torch.equal(unpacked.features, features) and torch.equal(unpacked.gaps, elapsed)
    assert torch.equal(unpacked.queries, queries)
    assert unpack_inputs(pack_inputs(features, elapsed)).queries.shape == (3, 0)


def test_loss_weighs_each_roles_mse_and_metrics_report_them_apart():
    values = torch.zeros(2, 3, 4)
    target = pack_targets(values, [ONE_STEP, ONE_STEP, FORECAST], {ONE_STEP: 0.1, FORECAST: 1.0})
    prediction = torch.zeros(2, 3, 4)
    prediction[:, :2] = 2.0   # one-step rows: squared error 4
    prediction[:, 2] = 1.0    # forecast row: squared error 1
    assert sequence_loss(prediction, target).item() == pytest.approx(1.0 + 0.1 * 4.0)
    assert sequence_metrics(prediction, target) == pytest.approx(
        {"one_step_mse": 4.0, "forecast_mse": 1.0})


# --- Irregular sampling -----------------------------------------------------------------------


def test_dropped_stamps_are_determined_by_the_seed():
    kept = [keep_stamps(1000, 0.1, torch.Generator().manual_seed(s)) for s in (4, 4, 5)]
    assert torch.equal(kept[0], kept[1]) and not torch.equal(kept[0], kept[2])
    assert len(kept[0]) == 900 and torch.all(kept[0].diff() > 0)
    with pytest.raises(ValueError, match="dropped"):
        keep_stamps(10, 1.0, torch.Generator())


def test_gaps_count_the_stamps_elapsed_since_the_previous_kept_one():
    assert gaps(torch.tensor([0, 1, 4, 5]), -1).tolist() == [1, 1, 3, 1]
    assert gaps(torch.tensor([7, 9]), 7).tolist() == [0, 2]
    assert window_starts(70, 64, 16) == [0] and window_starts(96, 64, 16) == [0, 16, 32]


def test_gaps_of_many_rows_at_once_count_each_from_its_own_previous():
    stamps = torch.tensor([[3, 4, 8], [10, 12, 13]])
    assert gaps(stamps, stamps[:, :1]).tolist() == [[0, 1, 4], [0, 2, 1]]
    assert gaps(stamps, 2).tolist() == [[1, 1, 4], [8, 2, 1]]


# --- Loaders on files in the real formats ----------------------------------------------------


def test_plane_vibration_csv_reads_the_five_attributes(tmp_path, monkeypatch):
    values = write_plane_vibration(tmp_path, 30)
    trust_written(monkeypatch, tmp_path)
    series = read_plane_vibration(locate(str(tmp_path), "plane_vibration", "pv.csv"))
    assert series.shape == (30, 5) and series.dtype == torch.float32
    np.testing.assert_allclose(series.numpy(), values, rtol=1e-6)


def test_silverbox_csv_reads_v1_and_v2(tmp_path, monkeypatch):
    values = write_silverbox(tmp_path, 25)
    trust_written(monkeypatch, tmp_path)
    signals = read_silverbox(locate(str(tmp_path), "silverbox", "sb.csv"))
    assert signals.shape == (25, 2)
    np.testing.assert_allclose(signals.numpy(), values, rtol=1e-6)


def test_walker_rollouts_are_found_in_name_order_and_read_as_float32(tmp_path, monkeypatch):
    rollouts = write_walker(tmp_path, [12, 9, 15])
    trust_written(monkeypatch, tmp_path)
    files = walker_files(str(tmp_path))
    assert [f.name for f in files] == ["rollout_000.npy", "rollout_001.npy", "rollout_002.npy"]
    array = read_rollout(files[1])
    assert array.dtype == torch.float32 and array.shape == (9, 17)
    np.testing.assert_allclose(array.numpy(), rollouts[1], rtol=1e-6)
    np.save(tmp_path / "walker" / "rollout_003.npy", np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"\[T, 17\]"):
        read_rollout(tmp_path / "walker" / "rollout_003.npy")


def test_missing_data_names_the_expected_path_and_how_to_get_it(tmp_path, monkeypatch):
    with pytest.raises(DataNotFound, match=r"plane_vibration/pv\.csv not found.*hedixia"):
        locate(str(tmp_path), "plane_vibration", "pv.csv")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("HARNESS_DATA_ROOT", raising=False)  # else the default is that folder
    expected = tmp_path / ".cache" / "harness" / "data" / "silverbox" / "sb.csv"
    with pytest.raises(DataNotFound, match=f"{expected} not found.*--data-root"):
        locate(None, "silverbox", "sb.csv")
    (tmp_path / "walker").mkdir()
    with pytest.raises(DataNotFound, match="rollout_NNN.npy"):
        walker_files(str(tmp_path))


def test_files_not_the_published_ones_fail_their_checksum(tmp_path):
    write_plane_vibration(tmp_path, 30)
    write_silverbox(tmp_path, 25)
    write_walker(tmp_path, [12, 9])
    for folder, name in (("plane_vibration", "pv.csv"), ("silverbox", "sb.csv")):
        published = sequence_files.SHA256[f"{folder}/{name}"]
        with pytest.raises(DataNotFound, match=f"^{tmp_path / folder / name}: SHA-256 "
                                               f"[0-9a-f]{{64}}, expected {published}"):
            locate(str(tmp_path), folder, name)
    with pytest.raises(DataNotFound, match=f"^{tmp_path / 'walker'}: the SHA-256 of the listing "
                                           f"of its 2 rollout files"):
        walker_files(str(tmp_path))


def test_a_csv_file_is_parsed_once_while_unchanged_and_each_read_is_its_own(
        tmp_path, monkeypatch, float64):
    """An ensemble's members each read pv.csv: the file is parsed once per process (again when
    it changes), and a reader changing its tensor changes no other reader's (in float64 too,
    where the parse's dtype is the tensor's)."""
    values = write_plane_vibration(tmp_path, 30)
    path = tmp_path / "plane_vibration" / "pv.csv"
    parses, loadtxt = [], np.loadtxt
    monkeypatch.setattr(np, "loadtxt", lambda *a, **k: parses.append(a[0]) or loadtxt(*a, **k))
    first = read_plane_vibration(path)
    first.zero_()
    second = read_plane_vibration(path)
    assert len(parses) == 1 and second.dtype == torch.float64
    np.testing.assert_array_equal(second.numpy(), values)
    write_plane_vibration(tmp_path, 31, seed=1)
    assert read_plane_vibration(path).shape == (31, 5) and len(parses) == 2


@pytest.mark.skipif(not (SHARED_DATA / "plane_vibration").exists(),
                    reason="no shared data beside the repo")
def test_a_pv_csv_cut_at_a_row_boundary_fails_naming_the_file(tmp_path):
    lines = (SHARED_DATA / "plane_vibration" / "pv.csv").read_text().splitlines(keepends=True)
    cut = tmp_path / "plane_vibration" / "pv.csv"
    cut.parent.mkdir()
    cut.write_text("".join(lines[:len(lines) // 2]))
    assert read_plane_vibration(cut).shape[1] == 5  # it would parse, and train
    with pytest.raises(DataNotFound, match=f"^{cut}: SHA-256 .*expected b72a9d06.*"
                                           f"cut short.*Replace it with a fresh copy; .*hedixia"):
        pv_data(tmp_path, 0)
    assert locate(str(SHARED_DATA), "plane_vibration", "pv.csv")  # the real files pass
    assert locate(str(SHARED_DATA), "silverbox", "sb.csv")


def test_a_missing_or_extra_rollout_fails_the_listing(tmp_path, monkeypatch):
    write_walker(tmp_path, [12, 9, 15])
    trust_written(monkeypatch, tmp_path)
    assert len(walker_files(str(tmp_path))) == 3
    (tmp_path / "walker" / "rollout_001.npy").unlink()
    with pytest.raises(DataNotFound, match="listing of its 2 rollout files.*a file is missing"):
        walker_files(str(tmp_path))
    write_walker(tmp_path, [12, 9, 15, 4])
    with pytest.raises(DataNotFound, match="listing of its 4 rollout files"):
        walker_files(str(tmp_path))


def test_a_bad_row_or_array_names_the_file(tmp_path):
    path = tmp_path / "pv.csv"
    for rows, problem in (("1,2,3,4,5,\n1,2,x,4,5,\n", "could not convert string 'x'"),
                          ("1,2,3,4,5,\n1,2,3\n", "invalid column index")):
        path.write_text('"header"\n' + rows)
        with pytest.raises(ValueError, match=f"^{path}: {problem}"):
            read_plane_vibration(path)
    path.write_text('"V1","V2",\n1\n')
    with pytest.raises(ValueError, match=f"^{path}: invalid column index 1"):
        read_silverbox(path)
    rollout = tmp_path / "rollout_000.npy"
    np.save(rollout, np.zeros((10, 17)))
    rollout.write_bytes(rollout.read_bytes()[:500])
    with pytest.raises(ValueError, match=f"^{rollout}: not a readable .npy array"):
        read_rollout(rollout)


def test_a_digest_is_computed_once_per_file_until_it_changes(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("1,2\n")
    first, hits = sequence_files.file_sha256(path), sequence_files._sha256.cache_info().hits
    assert sequence_files.file_sha256(path) == first
    assert sequence_files._sha256.cache_info().hits == hits + 1
    path.write_text("1,2,3\n")
    assert sequence_files.file_sha256(path) == trusted_sha256(path.read_bytes()) != first


# --- Splits and windows -----------------------------------------------------------------------

PV_OPTIONS = dict(PlaneVibration.options)


def pv_data(root, seed: int, **options):
    return PlaneVibration().data({**PV_OPTIONS, **options}, seed, str(root), CPU, None)


def test_plane_vibration_segments_split_in_time_and_follow_the_seed(tmp_path, monkeypatch):
    write_plane_vibration(tmp_path, 600)
    trust_written(monkeypatch, tmp_path)
    a, b, c = pv_data(tmp_path, 1), pv_data(tmp_path, 1), pv_data(tmp_path, 2)
    xa, ya = next(iter(a.train))
    assert torch.equal(xa, next(iter(b.train))[0]) and not torch.equal(xa, next(iter(c.train))[0])
    assert xa.shape[1:] == (INPUTS + HORIZON, 7) and ya.shape[1:] == (INPUTS - 1 + HORIZON, 7)
    inputs = unpack_inputs(xa)
    assert torch.all(inputs.gaps[:, 0] == 0) and torch.all(inputs.gaps[:, 1:] >= 1)
    # forecast spans: from the last observation to the 65th kept stamp, then stamp by stamp
    assert torch.all(inputs.queries[:, 0] >= 1) and torch.all(inputs.queries.diff(dim=1) == 1)
    assert (ya[0, :, 0] == FORECAST).sum() == HORIZON
    assert ya[0, 0, 1].item() == pytest.approx(0.1) and ya[0, -1, 1].item() == 1.0
    # the one-step targets are the next observations (standardised values agree)
    torch.testing.assert_close(ya[:, :INPUTS - 1, 2:], inputs.features[:, 1:])
    assert len(next(iter(a.validation))[0]) >= 1 and len(next(iter(a.test))[0]) >= 1


def test_adjoint_epochs_must_be_a_list_of_epochs(tmp_path, monkeypatch):
    write_plane_vibration(tmp_path, 600)
    trust_written(monkeypatch, tmp_path)
    with pytest.raises(ValueError, match="adjoint_epochs"):
        pv_data(tmp_path, 0, adjoint_epochs=3)


def test_plane_vibration_standardises_with_the_training_split(tmp_path, monkeypatch):
    write_plane_vibration(tmp_path, 600)
    trust_written(monkeypatch, tmp_path)
    x, _ = next(iter(pv_data(tmp_path, 0).train))
    features = unpack_inputs(x).features.reshape(-1, 5)
    assert features.mean(dim=0).abs().max() < 0.3  # train windows: about standardised


def test_walker_splits_by_file_with_a_fixed_shuffle():
    files = [f"rollout_{i:03d}.npy" for i in range(400)]
    train, val, test = split_files(files, 0)
    assert (len(train), len(val), len(test)) == (300, 40, 60)
    assert set(train) | set(val) | set(test) == set(files)
    assert split_files(files, 0) == (train, val, test) and split_files(files, 1)[2] != test


def test_walker_windows_pair_each_kept_stamp_with_the_next_stamp(tmp_path, monkeypatch):
    write_walker(tmp_path, [40] * 20, labelled=True)
    trust_written(monkeypatch, tmp_path)
    options = {**Walker2D.options, "window": 8, "stride": 4}
    data = Walker2D().data(options, 3, str(tmp_path), CPU, None)
    x, y = next(iter(data.train))
    inputs = unpack_inputs(x)
    assert x.shape[1:] == (8, 19) and y.shape[1:] == (8, 19)
    stamps = inputs.features[..., 0]  # 1000·rollout + stamp
    assert torch.equal(y[..., 2], stamps + 1)  # the target is the next stamp of the rollout
    # the gap (×64) is the number of stamps since the previous kept one, within a window
    torch.testing.assert_close(inputs.gaps[:, 1:] * 64, stamps.diff(dim=1))
    assert torch.all(inputs.gaps * 64 >= 1)
    again = Walker2D().data(options, 3, str(tmp_path), CPU, None)
    assert torch.equal(x, next(iter(again.train))[0])


@pytest.mark.skipif(not (SHARED_DATA / "walker").exists(), reason="no shared data beside the repo")
def test_walker_real_data_split_sizes():
    files = walker_files(str(SHARED_DATA))
    assert len(files) == 400
    assert [len(s) for s in split_files(files, 0)] == [300, 40, 60]


@pytest.mark.skipif(not (SHARED_DATA / "plane_vibration").exists(),
                    reason="no shared data beside the repo")
def test_plane_vibration_real_data_gives_segments_in_every_split():
    data = pv_data(SHARED_DATA, 0)
    sizes = [len(batches.x) for batches in (data.train, data.validation, data.test)]
    assert sizes[0] == 510 and 250 <= sizes[1] <= 255 and 250 <= sizes[2] <= 255


# --- Parameter counts (docs/parameter-counts.md) ----------------------------------------------

COUNTS = {
    "plane_vibration": {"node": 15965, "anode": 16703, "sonode": 16573, "hbnode": 16046,
                        "ghbnode": 16047},
    "walker2d": {"node": 8729, "anode": 8819, "sonode": 8757, "hbnode": 8898, "ghbnode": 8899},
}


@pytest.mark.parametrize("task,model", [(t, m) for t in COUNTS for m in FAMILIES])
def test_parameter_counts_within_one_percent_of_the_papers(registry, task, model):
    count = count_parameters(build_run(make_spec(task=task, model=model), registry, CPU).model)
    assert count == COUNTS[task][model]
    paper = registry.tasks[task].paper_params.get(model)
    if paper is not None:
        assert abs(count - paper) <= 0.01 * paper


def test_plane_vibration_without_the_initial_state_layer(registry):
    widths = {"n": 20, "h1": 20, "h2": 20, "c": 0}
    built = build_run(make_spec(task="plane_vibration", model="hbnode", widths=widths), registry, CPU)
    assert count_parameters(built.model) == COUNTS["plane_vibration"]["hbnode"] - (320 * 40 + 40)


# --- A tiny training run of every family ------------------------------------------------------

RK4 = {"method": "rk4", "options": {"step_size": 1.0}}  # 4 evaluations per solve


@pytest.fixture
def sequence_root(tmp_path, monkeypatch):
    write_plane_vibration(tmp_path, 420)
    write_walker(tmp_path, [30] * 20)
    write_silverbox(tmp_path, 40)
    trust_written(monkeypatch, tmp_path)
    return str(tmp_path)


def tiny_run(registry, root, task, model, **settings):
    spec = make_spec(task=task, model=model, epochs=1, solver=RK4, **settings)
    return execute_run(dataclasses.replace(spec, data_root=root), registry, CPU)


@pytest.mark.parametrize("model", FAMILIES)
def test_plane_vibration_trains_every_family_and_counts_nfe(registry, sequence_root, model):
    record = tiny_run(registry, sequence_root, "plane_vibration", model, batch_size=2,
                      task_options={"adjoint_epochs": [1], "adjoint_windows": 2})
    assert record["status"] == "ok", record["error"]
    epoch = record["epochs"][0]
    assert epoch["forward_nfe"] == 4 * (INPUTS - 1 + 1)  # 63 gaps (the first is 0) + forecast
    assert epoch["backward_nfe"] > 0 and epoch["eval_nfe"] == epoch["forward_nfe"]
    for key in ("loss", "one_step_mse", "forecast_mse", "test_forecast_mse", "val_forecast_mse",
                "val_one_step_mse", "adjoint_ratio", "adjoint_decay_rate"):
        assert epoch[key] is not None and np.isfinite(epoch[key]), key
    assert len(epoch["adjoint_norm"]) == INPUTS == len(epoch["adjoint_elapsed"])
    assert epoch["adjoint_elapsed"][-1] == 0.0 and epoch["adjoint_norm"][-1] > 0


def test_the_authors_forecast_solves_to_the_first_stamp_then_once_through_the_rest(
        registry, sequence_root):
    """``forecast: authors`` (docs/profiles.md): after the 63 gaps, one solve to the first
    forecast stamp and one through the other 7 (RK4 at step 1: 4 NFE a stamp); the probe's
    last row, the prediction from the last state, is the 64th one-step row."""
    record = tiny_run(registry, sequence_root, "plane_vibration", "hbnode", batch_size=2,
                      task_options={"forecast": "authors", "adjoint_epochs": [1],
                                    "adjoint_windows": 2})
    assert record["status"] == "ok", record["error"]
    epoch = record["epochs"][0]
    assert epoch["forward_nfe"] == 4 * (INPUTS - 1 + 1 + HORIZON - 1)
    assert np.isfinite(epoch["one_step_mse"]) and np.isfinite(epoch["forecast_mse"])
    assert len(epoch["adjoint_norm"]) == INPUTS and epoch["adjoint_norm"][-1] > 0


@pytest.mark.parametrize("model", FAMILIES)
def test_walker_trains_every_family_and_counts_nfe(registry, sequence_root, model):
    record = tiny_run(registry, sequence_root, "walker2d", model, batch_size=8,
                      task_options={"window": 8, "stride": 8, "adjoint_epochs": [1]})
    assert record["status"] == "ok", record["error"]
    epoch = record["epochs"][0]
    assert epoch["forward_nfe"] == 4 * 8 and epoch["backward_nfe"] > 0
    assert np.isfinite(epoch["test_one_step_mse"]) and np.isfinite(epoch["val_one_step_mse"])
    assert len(epoch["adjoint_norm"]) == 8


def test_walker_dropped_stamps_follow_the_seed(tmp_path, monkeypatch):
    write_walker(tmp_path, [40] * 20, labelled=True)
    trust_written(monkeypatch, tmp_path)
    options = {**Walker2D.options, "window": 8, "stride": 4}
    first, second = (next(iter(Walker2D().data(options, s, str(tmp_path), CPU, None).train))[0]
                     for s in (3, 4))
    assert not torch.equal(first, second)


# --- The Silverbox initialisation study -------------------------------------------------------


def ramp_model(a: float, b: float, c: float) -> ForcedTrajectory:
    """NODE with f = a·h + b·V1 + c."""
    net = torch.nn.Linear(2, 1).double()
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[a, b]]))
        net.bias.fill_(c)
    solver = SolverConfig(method="dopri5", rtol=1e-10, atol=1e-10, adjoint=False)
    return ForcedTrajectory(ODEBlock(NODE(), net, 1, solver, NFECounter()), None)


def test_silverbox_input_voltage_enters_f_linearly_between_samples():
    a, b, c, h0, v0, slope = -0.5, 2.0, 0.3, 1.5, 0.2, 0.7
    times = torch.arange(6, dtype=torch.float64)
    x = torch.stack([v0 + slope * times, torch.full_like(times, h0)], dim=-1)[None]
    with torch.no_grad():
        h = ramp_model(a, b, c)(x)[0, :, 0]
    beta = -b * slope / a                  # h_p(t) = α + β t solves h' = a h + b(v0 + s t) + c
    alpha = (beta - b * v0 - c) / a
    exact = alpha + beta * times + (h0 - alpha) * torch.exp(a * times)
    torch.testing.assert_close(h, exact, rtol=1e-7, atol=1e-8)


def test_silverbox_adjoint_gradients_match_backprop_with_the_signal_in_each_solve():
    def gradients(adjoint: bool) -> list[torch.Tensor]:
        model = ramp_model(-0.4, 1.2, 0.1)
        model.ode.solver = SolverConfig(method="dopri5", rtol=1e-9, atol=1e-9, adjoint=adjoint)
        x = torch.stack([torch.sin(torch.arange(5.0, dtype=torch.float64)),
                         torch.ones(5, dtype=torch.float64)], dim=-1)[None]
        model(x).pow(2).sum().backward()
        return [p.grad for p in model.parameters()]

    for with_adjoint, direct in zip(gradients(True), gradients(False)):
        torch.testing.assert_close(with_adjoint, direct, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("model", FAMILIES)
def test_silverbox_study_records_the_norm_curve_at_initialisation(registry, sequence_root, model):
    spec = make_spec(task="silverbox_init", model=model, epochs=0,
                     task_options={"horizon": 12, "start": 5})
    record = execute_run(dataclasses.replace(spec, data_root=sequence_root), registry, CPU)
    assert record["status"] == "ok", record["error"]
    (epoch,) = record["epochs"]
    assert epoch["epoch"] == 0 and epoch["eval_nfe"] > 0
    assert len(epoch["h_norm"]) == 13 == len(epoch["state_norm"])
    signals = np.loadtxt(f"{sequence_root}/silverbox/sb.csv", delimiter=",", skiprows=1,
                         usecols=(0, 1))
    assert epoch["h_norm"][0] == pytest.approx(abs(signals[5, 1]) * 100, rel=1e-5)
    assert np.isfinite(epoch["h_norm_growth_rate"]) and np.isfinite(epoch["h_norm_log10_growth"])
