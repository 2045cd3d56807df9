"""Figures from synthetic records with known values: the numbers plotted, and the files."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.reports import figures
from harness.reports.aggregate import group_runs
from tests.result_records import curve_run, epoch, record

PNG = ("png",)


def _series(figure: figures.Figure, panel: int = 0) -> dict[str, figures.Series]:
    return {series.label: series for series in figure.panels[panel].series}


@pytest.fixture
def point_cloud() -> list:
    """Three seeds of hbnode (forward NFE per epoch 10/20/30 + 2·seed, backward 40 + seed,
    loss 10^(−epoch − seed))
    and one of node without the adjoint, 3 epochs, test accuracy on epochs 2 and 3."""
    runs = []
    for seed in range(3):
        runs.append(record("point_cloud", "hbnode", seed, [
            epoch(e, forward_nfe=10.0 * e + 2 * seed, backward_nfe=40.0 + seed,
                  train_time_s=0.5 * e, loss=10.0 ** (-e - seed),
                  **({"test_accuracy": 0.5 + 0.1 * seed} if e >= 2 else {}))
            for e in (1, 2, 3)], tol=1e-5))
    runs.append(record("point_cloud", "node", 0, [
        epoch(e, forward_nfe=5.0 * e, backward_nfe=None, loss=0.5) for e in (1, 2, 3)],
        tol=1e-5))
    return group_runs(runs)


def test_nfe_per_epoch_plots_mean_and_std_band(point_cloud, tmp_path: Path) -> None:
    figure = figures.nfe_per_epoch(point_cloud, tmp_path, ("png", "svg"))
    forward = _series(figure, 0)
    hb = forward["hbnode"]
    assert hb.x == [1.0, 2.0, 3.0]
    assert hb.y == [12.0, 22.0, 32.0]                     # mean over seeds of 10·e + 2·seed
    assert hb.low == [10.0, 20.0, 30.0] and hb.high == [14.0, 24.0, 34.0]  # ± std = 2
    assert hb.n == [3, 3, 3]
    half = 4.302653 * 2 / 3 ** 0.5  # t(0.975, 2) · std / sqrt(n)
    assert hb.ci_low == pytest.approx([12.0 - half, 22.0 - half, 32.0 - half])
    assert hb.ci_high == pytest.approx([12.0 + half, 22.0 + half, 32.0 + half])
    assert forward["node"].y == [5.0, 10.0, 15.0] and forward["node"].low == [None] * 3
    assert forward["node"].ci_low == [None] * 3
    backward = _series(figure, 1)
    assert list(backward) == ["hbnode"]                  # node ran without the adjoint
    assert backward["hbnode"].y == [41.0] * 3
    assert [path.name for path in figure.files] == ["nfe.png", "nfe.svg"]
    assert figure.files[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in figure.files[1].read_bytes()[:500]
    assert figure.title == ("point_cloud — dopri5, tol 1e-05, adjoint, full batch, lr 0.01, "
                            "3 epochs — 1–3 seeds per model")


def test_learning_curves_and_time(point_cloud, tmp_path: Path) -> None:
    learning = figures.learning_curves(point_cloud, tmp_path, PNG)
    loss, test = _series(learning, 0), _series(learning, 1)
    # log axis: geometric mean 10^(−epoch − 1), band ±1 decade (std of log10 over seeds)
    assert learning.panels[0].log_y
    assert loss["hbnode"].y == pytest.approx([1e-2, 1e-3, 1e-4])
    assert loss["hbnode"].low == pytest.approx([1e-3, 1e-4, 1e-5])
    assert loss["hbnode"].high == pytest.approx([1e-1, 1e-2, 1e-3])
    # the CI of the mean log10 (std 1 decade, n = 3), raised back: ×/÷ 10^2.4841
    assert loss["hbnode"].ci_high == pytest.approx([1e-2 * 10 ** (4.302653 / 3 ** 0.5)] + [
        1e-3 * 10 ** (4.302653 / 3 ** 0.5), 1e-4 * 10 ** (4.302653 / 3 ** 0.5)])
    assert loss["node"].y == pytest.approx([0.5] * 3)
    assert test["hbnode"].x == [2.0, 3.0] and test["hbnode"].y == pytest.approx([0.6, 0.6])
    assert test["hbnode"].high == pytest.approx([0.7, 0.7])
    assert "node" not in test                            # never evaluated
    time = figures.time_per_epoch(point_cloud, tmp_path, PNG)
    assert _series(time)["hbnode"].y == [0.5, 1.0, 1.5]
    assert (tmp_path / "learning.png").is_file() and (tmp_path / "time.png").is_file()


def test_per_epoch_figures_need_two_epochs(tmp_path: Path) -> None:
    groups = group_runs([record("pc", "node", 0, [epoch(1)])])
    assert figures.nfe_per_epoch(groups, tmp_path, PNG) is None
    assert not list(tmp_path.iterdir())


def test_nfe_vs_tolerance(tmp_path: Path) -> None:
    runs = [curve_run("cifar10", model, seed,
                      {"forward_nfe": [base * tol_factor + seed],
                       "backward_nfe": [2 * base * tol_factor - seed]}, tol=tol)
            for model, base in (("node", 20.0), ("hbnode", 10.0))
            for tol, tol_factor in ((1e-3, 1.0), (1e-4, 2.0), (1e-5, 4.0))
            for seed in (0, 2)]
    figure = figures.nfe_vs_tolerance(group_runs(runs), tmp_path, PNG)
    series = _series(figure)
    node = series["node"]
    assert node.color_values == [1e-3, 1e-4, 1e-5]
    assert node.x == [21.0, 41.0, 81.0] and node.y == [39.0, 79.0, 159.0]
    assert node.x_std == pytest.approx([2 ** 0.5] * 3)
    assert node.high == pytest.approx([39.0 + 2 ** 0.5, 79.0 + 2 ** 0.5, 159.0 + 2 ** 0.5])
    assert series["hbnode"].x == [11.0, 21.0, 41.0]
    assert "tol 1e-05…0.001" in figure.title and (tmp_path / "nfe-vs-tolerance.png").is_file()
    one_tolerance = [run for run in runs if run["config"]["solver"]["rtol"] == 1e-3]
    assert figures.nfe_vs_tolerance(group_runs(one_tolerance), tmp_path, PNG) is None


def test_adjoint_decay_is_a_geometric_mean_against_time_to_the_end(tmp_path: Path) -> None:
    def run(model: str, seed: int, norms: list[float]) -> dict:
        probe = {"adjoint_norm": norms, "adjoint_elapsed": [2.0 + seed, 1.0, 0.0]}
        return record("walker2d", model, seed, [epoch(1, **probe), epoch(2), epoch(3, **probe)],
                      metric="one_step_mse")
    runs = [run("node", 0, [1e-6, 1e-3, 1.0]), run("node", 2, [1e-8, 0.0, 1.0]),
            run("hbnode", 0, [0.1, 0.5, 1.0])]
    figure = figures.adjoint_decay(group_runs(runs), tmp_path, PNG)
    assert [panel.title for panel in figure.panels] == ["after epoch 1", "after epoch 3"]
    node = _series(figure)["node"]
    assert node.x == [3.0, 1.0, 0.0]                       # mean elapsed over seeds
    assert node.y == pytest.approx([1e-7, 1e-3, 1.0])      # 10^mean(log10); the 0.0 dropped
    assert node.n == [2, 1, 2]
    assert node.low[0] == pytest.approx(10 ** (-7 - 2 ** 0.5))
    assert node.low[1] is None and figure.panels[0].log_y
    assert _series(figure)["hbnode"].y == pytest.approx([0.1, 0.5, 1.0])
    no_probe = [record("walker2d", "node", 0, [epoch(1), epoch(2)])]
    assert figures.adjoint_decay(group_runs(no_probe), tmp_path, PNG) is None


def test_h_norm_growth(tmp_path: Path) -> None:
    runs = [record("silverbox_init", model, seed, [epoch(0, h_norm=curve)], metric="mse")
            for model, seed, curve in (("node", 0, [1.0, 10.0, 100.0]),
                                       ("node", 1, [1.0, 1000.0, 1e4]),
                                       ("ghbnode", 0, [1.0, 0.5, 0.25]))]
    runs.append(record("silverbox_init", "sonode", 0, [], metric="mse", status="failed"))
    figure = figures.h_norm_growth(group_runs(runs), tmp_path, PNG)
    series = _series(figure)
    assert series["node"].x == [0, 1, 2]
    assert series["node"].y == pytest.approx([1.0, 100.0, 1000.0])
    assert series["ghbnode"].y == pytest.approx([1.0, 0.5, 0.25])
    assert "sonode" not in series
    assert figure.title.endswith("1–2 seeds per model; no ok run: sonode")


def test_draw_all_draws_the_kinds_with_data(point_cloud, tmp_path: Path) -> None:
    drawn = figures.draw_all(point_cloud, tmp_path, "pc", PNG)
    assert [figure.name for figure in drawn] == ["nfe", "learning", "time"]
    assert sorted(path.name for path in (tmp_path / "pc").iterdir()) == [
        "learning.png", "nfe.png", "time.png"]


def test_a_fixed_step_method_is_described_without_a_tolerance() -> None:
    """rk4 (and the proximal schemes) take fixed steps: the settings line names no tol."""
    rk4 = {"method": "rk4", "rtol": 1e-7, "atol": 1e-7, "adjoint": True,
           "options": {"step_size": 0.1}}
    groups = group_runs([record("point_cloud", "node", 0, [epoch(1)], config={"solver": rk4})])
    assert figures.describe_settings(groups) == "rk4, adjoint, full batch, lr 0.01, 1 epoch"
    bdf2 = group_runs([record("diffusion1d", "node", 0, [epoch(0)],
                              config={"solver": {**rk4, "method": "bdf2"}})])
    assert "tol" not in figures.describe_settings(bdf2)


def _graph_run(seed: int, dynamics: str, end_time: float, labels: int, accuracy: float):
    run = record("graph_sbm", "node", seed,
                 [epoch(1, test_accuracy=accuracy, dirichlet_energy=[10.0, end_time, 1.0],
                        energy_time=[0.0, end_time / 2, end_time])],
                 config={"task_options": {"dynamics": dynamics, "end_time": end_time,
                                          "train_per_class": labels}})
    run["key"] += f"/{dynamics}/{end_time}/{labels}"
    return run


def test_accuracy_is_drawn_against_each_swept_task_option_and_energy_against_t(tmp_path: Path):
    runs = [_graph_run(seed, dynamics, end_time, 5, accuracy + seed / 100)
            for seed in (0, 1) for dynamics, base in (("grand-l", 0.9), ("grand++-l", 0.8))
            for end_time, accuracy in ((1.0, base), (32.0, base - 0.5))]
    runs += [_graph_run(0, "grand-l", 8.0, labels, 0.7) for labels in (1, 20)]
    groups = group_runs(runs)
    figure = figures.metric_vs_setting(groups, tmp_path, PNG)
    against_t, against_labels = figure.panels
    lines = {series.label: series for series in against_t.series}
    assert lines["node (dynamics=grand-l, train_per_class=5)"].x == [1.0, 32.0]
    assert lines["node (dynamics=grand-l, train_per_class=5)"].y == pytest.approx([0.905, 0.405])
    assert against_t.log_x and [s.x for s in against_labels.series] == [[1.0, 20.0]]
    energy = figures.energy_curves(groups, tmp_path, PNG)
    curve = next(s for s in energy.panels[0].series if s.label.startswith("node (dynamics=grand-l, end_time=32"))
    assert curve.x == [0.0, 16.0, 32.0] and curve.y == pytest.approx([10.0, 32.0, 1.0])
