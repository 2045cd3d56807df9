"""Each record keeps its grid point — the ``runs:`` entry and the grid values it came from — and
the reports group by it: runs of two grid points are never one group, even when one's
configuration lacks a key the other's holds; older records without it load and group as before,
joining the newer records of their setting."""
from __future__ import annotations

import copy
from pathlib import Path

from harness.record import record_problem
from harness.reports.aggregate import group_runs
from harness.running.records import new_record
from harness.running.runner import solver_backend
from harness.suites.loader import load_suite
from tests.conftest import CPU
from tests.result_records import epoch, record

SUITE = """
name: points
runs:
  - task: point_cloud
    model: node
    epochs: 1
    grid:
      solver.tol: [1.0e-3, 1.0e-5]
      lr: [0.01]
  - task: point_cloud
    model: node
    epochs: 1
    solver: {method: rk4, options: {step_size: 0.25}}
"""


def test_a_run_keeps_its_entry_and_grid_values_in_its_record(tmp_path: Path, registry) -> None:
    path = tmp_path / "points.yaml"
    path.write_text(SUITE)
    runs = load_suite(path, registry).runs
    assert [spec.grid_point for spec in runs] == [
        {"entry": 0, "values": {"solver.tol": 1e-3, "lr": 0.01}},
        {"entry": 0, "values": {"solver.tol": 1e-5, "lr": 0.01}},
        {"entry": 1, "values": {}}]
    made = new_record(runs[1], registry, CPU, solver_backend(runs[1], registry))
    assert made["grid_point"] == {"entry": 0, "values": {"solver.tol": 1e-5, "lr": 0.01}}
    assert "grid_point" not in made["config"]  # where it came from, not what it ran with
    assert record_problem(made) is None
    older = {name: value for name, value in made.items() if name != "grid_point"}
    assert record_problem(older) is None  # records made before it was kept still load


def _at(run: dict, entry: int, options: dict) -> dict:
    """``run`` as made from entry ``entry`` with solver options ``options``."""
    run = copy.deepcopy(run)
    run["config"]["solver"]["options"] = options
    run["key"] += f"/{entry}"
    run["grid_point"] = {"entry": entry, "values": {}}
    return run


def test_runs_of_two_grid_points_are_two_groups_even_when_a_key_is_missing_from_one() -> None:
    """``options: {}`` against ``{step_size: 0.25}``: compared on the keys both hold, nothing
    differs; their grid points say they are two settings, and the key one lacks names them."""
    runs = [_at(record("pc", "node", seed, [epoch(1)]), entry, options)
            for entry, options in ((0, {}), (1, {"step_size": 0.25})) for seed in (0, 1)]
    groups = group_runs(runs)
    assert [[run["key"] for run in group.runs] for group in groups] == [
        [runs[0]["key"], runs[1]["key"]], [runs[2]["key"], runs[3]["key"]]]
    assert [group.label for group in groups] == ["node (options={}, step_size=None)",
                                                 "node (options=None, step_size=0.25)"]


def test_an_older_record_joins_the_group_of_its_setting() -> None:
    """Seeds 0 and 1 recorded before grid points were kept, seeds 2 and 3 after (the suite
    extended): one group per tolerance, as before."""
    runs = [record("pc", "node", seed, [epoch(1)], tol=tol) for tol in (1e-3, 1e-5)
            for seed in range(4)]
    for run in runs:
        if run["seed"] >= 2:
            run["grid_point"] = {"entry": 0, "values": {"solver.tol": run["config"]["solver"]
                                                        ["rtol"]}}
    groups = group_runs(runs)
    assert [(group.label, [run["seed"] for run in group.runs]) for group in groups] == [
        ("node (tol 0.001)", [0, 1, 2, 3]), ("node (tol 1e-05)", [0, 1, 2, 3])]
