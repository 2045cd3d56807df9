"""Seed aggregation: exact stats, grouping by setting (not by seed), per-run values."""
from __future__ import annotations

import math

import pytest

from harness.reports.aggregate import (curve_stats, epoch_series, group_runs, run_value, setting_label,
                               stat)
from tests.result_records import curve_run, epoch, record


def test_stat_is_mean_sample_std_and_n_of_finite_values() -> None:
    s = stat([1.0, 2.0, 3.0, None, math.nan, math.inf])
    assert (s.mean, s.std, s.n) == (2.0, 1.0, 3)
    assert stat([5.0]) == stat([5.0, None]) and stat([5.0]).std is None
    assert stat([]).mean is None and stat([]).n == 0
    assert stat([10.0, 30.0]).format() == "20 ± 14" and stat([]).format() == "—"


def test_seeds_share_a_group_and_a_tolerance_grid_splits_it() -> None:
    records = [record("pc", model, seed, [epoch(1)], tol=tol)
               for tol in (1e-3, 1e-5) for model in ("node", "hbnode") for seed in (0, 1, 2)]
    groups = group_runs(records)
    assert [(g.model, g.setting, len(g.runs)) for g in groups] == [
        ("node", {"solver.rtol": 1e-3, "solver.atol": 1e-3}, 3),
        ("hbnode", {"solver.rtol": 1e-3, "solver.atol": 1e-3}, 3),
        ("node", {"solver.rtol": 1e-5, "solver.atol": 1e-5}, 3),
        ("hbnode", {"solver.rtol": 1e-5, "solver.atol": 1e-5}, 3)]
    # task_options.data_seed follows the seed: it never makes a setting
    assert groups[0].label == "node (tol 0.001)"


def test_suites_are_apart_and_a_setting_applies_to_every_model_of_the_task() -> None:
    records = [record("pc", "node", 0, [epoch(1)], tol=1e-3),
               record("pc", "node", 0, [epoch(1)], tol=1e-5),
               record("pc", "hbnode", 0, [epoch(1)], tol=1e-5),
               record("pc", "hbnode", 0, [epoch(1)], suite="other")]
    groups = group_runs(records)
    assert [(g.suite, g.label) for g in groups] == [
        ("test", "node (tol 0.001)"), ("test", "node (tol 1e-05)"),
        ("test", "hbnode (tol 1e-05)"), ("other", "hbnode")]


def test_a_retried_run_counts_once_by_its_last_record() -> None:
    failed = record("pc", "node", 0, [], status="failed")
    groups = group_runs([failed, record("pc", "node", 0, [epoch(1)])])
    assert len(groups[0].runs) == 1 and len(groups[0].ok) == 1


def test_run_values_and_group_values() -> None:
    runs = [curve_run("pc", "node", seed, {"forward_nfe": [10.0 + seed, 20.0 + seed, 60.0]})
            for seed in (0, 2)]
    assert run_value(runs[0], "forward_nfe") == 30.0
    assert run_value(runs[0], "forward_nfe", "first") == 10.0
    assert run_value(runs[1], "forward_nfe", "last") == 60.0
    assert run_value(runs[0], "missing") is None
    group = group_runs(runs)[0]
    assert group.value("forward_nfe", "first") == stat([10.0, 12.0])
    assert group.value("backward_nfe").mean == 12.0


def test_epoch_series_skips_epochs_without_the_field() -> None:
    runs = [record("pc", "node", seed, [epoch(1), epoch(2, test_accuracy=0.5 + seed / 4),
                                        epoch(3), epoch(4, test_accuracy=0.9)])
            for seed in (0, 1)]
    epochs, stats = epoch_series(runs, "test_accuracy")
    assert epochs == [2, 4]
    assert stats[0].mean == 0.625 and stats[0].std == pytest.approx(0.25 / 2 ** 0.5)
    assert (stats[1].mean, stats[1].n) == (0.9, 2)


def test_curve_stats_pointwise_and_in_log10() -> None:
    plain = curve_stats([[1.0, 2.0, 3.0], [3.0, 4.0]])
    assert [s.mean for s in plain] == [2.0, 3.0]
    logs = curve_stats([[1e-2, 0.0], [1e-4, 1e-3]], log=True)
    assert logs[0].mean == pytest.approx(-3.0) and logs[0].std == pytest.approx(2 ** 0.5)
    assert (logs[1].mean, logs[1].n) == (pytest.approx(-3.0), 1)  # the zero is left out


def test_setting_labels() -> None:
    assert setting_label({}) == ""
    assert setting_label({"solver.rtol": 1e-3, "solver.atol": 1e-3}) == "tol 0.001"
    assert setting_label({"solver.rtol": 1e-3, "solver.atol": 1e-6, "epochs": 3}) == \
        "rtol=0.001, atol=1e-06, epochs=3"
