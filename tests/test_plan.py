"""The plan is made once and executed as it is: the driver runs exactly the plan's units of work
(a grouping planted in the plan is what trains), refuses a plan the folder has moved on from,
and ``--dry-run`` announces what the run then does — runs skipped, resumed, run and left out
for missing data — for a folder holding finished, failed and checkpointed runs."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness import hookimpl
from harness.cli import main
from harness.plugins import load_registry
from harness.running.checkpoints import Checkpoints
from harness.running.driver import run_plan, run_suite
from harness.running.ensembles import ensemble_id
from harness.running.plan import NEW, UNAVAILABLE, PlanOutdated, plan_suite
from harness.running.preflight import unavailable_record
from harness.running.store import ResultStore, read_records
from harness.suites.loader import load_suite
from tests.conftest import CPU, make_spec

FAST = {"backend": "fast", "rtol": 1e-3, "atol": 1e-3}
SMALL = {"inner": 10, "outer": 20}


def _seeds(count: int) -> list:
    return [make_spec(model="node", seed=seed, epochs=1, solver=FAST, task_options=SMALL)
            for seed in range(count)]


def test_the_driver_executes_the_plans_units_as_they_are(tmp_path, registry):
    """A grouping planted in the plan (two runs the planner left alone, as one ensemble, the
    third not at all) is what the executor receives and trains."""
    runs = _seeds(3)
    plan = plan_suite(runs, tmp_path)
    assert plan.units == [[spec] for spec in runs]
    planted = dataclasses.replace(plan, units=[[runs[2], runs[0]]], ensemble=2)
    records = run_plan(planted, registry, CPU).records
    identity = ensemble_id([runs[2], runs[0]])
    assert [(r["key"], r["status"], r["ensemble"]) for r in records] == [
        (runs[2].key, "ok", {"id": identity, "size": 2, "index": 0}),
        (runs[0].key, "ok", {"id": identity, "size": 2, "index": 1})]
    assert [r["key"] for r in read_records(tmp_path)] == [runs[2].key, runs[0].key]


def test_a_plan_the_folder_has_moved_on_from_is_refused_before_anything_is_written(tmp_path,
                                                                                   registry):
    """Another run finishing a run between planning and taking the lock: the plan no longer
    says what is done, so nothing of it runs (not even the suite's files are written)."""
    runs = _seeds(2)
    plan = plan_suite(runs, tmp_path)
    run_suite(runs[:1], registry, tmp_path, CPU)  # another harness run, meanwhile
    with pytest.raises(PlanOutdated, match="another harness run wrote here since this one "
                                           "was planned; run the command again"):
        run_plan(plan, registry, CPU, files={"claims.yaml": b"claims: []\n"})
    assert [r["key"] for r in read_records(tmp_path)] == [runs[0].key]
    assert not (tmp_path / "claims.yaml").exists()
    assert [r["key"] for r in run_plan(plan_suite(runs, tmp_path), registry, CPU).records] == [
        runs[1].key]


def test_a_unit_is_left_out_whole(tmp_path):
    """Runs lacking data leave the plan's units as whole units; the check answers per task
    options and data root, which an ensemble's runs share, so splitting one is refused."""
    runs = _seeds(3)
    plan = plan_suite(runs, tmp_path, ensemble=2)
    assert plan.units == [runs[:2], runs[2:]]
    left = plan.leaving_out({runs[2].key: ["/data/x.csv"]})
    assert left.units == [runs[:2]]
    assert [(run.state, run.missing) for run in left.runs] == [
        (NEW, ()), (NEW, ()), (UNAVAILABLE, ("/data/x.csv",))]
    assert [run.spec for run in left.todo] == runs[:2]
    with pytest.raises(ValueError, match="part of an ensemble lacks data"):
        plan.leaving_out({runs[0].key: ["/data/x.csv"]})


SUITE = """
name: mixed
runs:
  - task: point_cloud
    model: node
    seeds: [0, 1, 2, 3]
    epochs: 2
    solver: {backend: fast, tol: 1.0e-3}
    task_options: {inner: 10, outer: 20}
  - task: plane_vibration
    model: node
    epochs: 1
"""


class _CtrlCAfterEpoch:
    @hookimpl
    def harness_epoch_finished(self, run, epoch):
        if epoch["epoch"] == 1:
            raise KeyboardInterrupt


def _table(text: str) -> dict[str, dict[str, str]]:
    """The dry run's rows by task: column name → cell."""
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("task"))
    names = ["task", "model", "runs", "done", "resuming", "to run", "data"]
    rows = {}
    for line in lines[header + 2:]:
        if not line.strip():
            break
        cells = line.split()
        rows[cells[0]] = dict(zip(names, cells)) | {"left out": cells[-1]}
    return rows


def test_the_dry_run_announces_what_the_run_does(tmp_path, capsys):
    """Seed 0 finished, seed 1 failed, seed 2 checkpointed after its first epoch, seed 3 not
    begun, and a task whose data is missing (``--skip-unavailable``): the dry run's counts are
    the run's, run by run."""
    suite_file, out, data = tmp_path / "mixed.yaml", tmp_path / "out", tmp_path / "data"
    suite_file.write_text(SUITE)
    data.mkdir()
    registry = load_registry()
    runs = load_suite(suite_file, registry, data_root=str(data)).runs
    seeds = runs[:4]
    run_suite(seeds[:1], registry, out, CPU)
    with ResultStore(out) as store:
        store.append(unavailable_record(seeds[1], registry, CPU, ["gone.csv"]))
    registry.manager.register(_CtrlCAfterEpoch(), name="ctrl-c")
    with pytest.raises(KeyboardInterrupt):
        run_suite(seeds[2:3], registry, out, CPU)
    assert Checkpoints(out / "checkpoints").path(seeds[2].key).is_file()
    args = ["run", str(suite_file), "--out", str(out), "--data-root", str(data),
            "--skip-unavailable"]

    assert main([*args, "--dry-run"]) == 0
    rows = _table(capsys.readouterr().out)
    assert {task: (row["runs"], row["done"], row["resuming"], row["to run"], row["left out"])
            for task, row in rows.items()} == {"point_cloud": ("4", "1", "1", "3", "0"),
                                               "plane_vibration": ("1", "0", "0", "0", "1")}

    assert main([*args, "--quiet"]) == 0
    summary = capsys.readouterr().out
    assert "3 runs done (0 failed), 1 skipped as already finished, 1 left out" in summary
    new = read_records(out)[2:]  # after the finished and the failed seed's
    ran = [r for r in new if r["failure_kind"] != "data_missing"]
    assert [r["seed"] for r in ran] == [1, 2, 3] and all(r["status"] == "ok" for r in ran)
    assert [r.get("resumed_from_epoch") for r in ran] == [None, 1, None]
    assert [(r["task"], r["failure_kind"]) for r in new if r not in ran] == [
        ("plane_vibration", "data_missing")]
    total = {name: sum(int(row[name]) for row in rows.values())
             for name in ("done", "resuming", "to run", "left out")}
    assert total == {"done": 1, "resuming": sum(r.get("resumed_from_epoch") is not None
                                                for r in ran),
                     "to run": len(ran), "left out": len(new) - len(ran)}
