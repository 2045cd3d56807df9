"""What a run's key holds and how reports treat records that share or outgrow one: the task's
and the family's versions are in the key (a new version reruns its runs; older records are
reported as older, by report and compare, never mixed with newer ones); records of one run from
two directories are both shown; ensemble members' times are in no time figure."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness import Family, Task, hookimpl
from harness.plugins import load_registry
from harness.reports import figures
from harness.reports.aggregate import group_runs, older
from harness.reports.compare import compare, render
from harness.reports.page import write_page
from harness.running.driver import run_suite
from harness.running.store import load_results
from harness.suites.loader import load_suite
from tests.result_records import epoch, record, write_records

SUITE = """name: keyed
runs:
  - task: point_cloud
    model: node
    seeds: [0, 1]
    epochs: 1
    task_options: {inner: 10, outer: 20}
"""


@pytest.mark.parametrize("kind", ["task", "model"])
def test_a_new_task_or_family_version_changes_the_key_and_reruns(registry, tmp_path,
                                                                  monkeypatch, kind):
    path = tmp_path / "keyed.yaml"
    path.write_text(SUITE)
    before = load_suite(path, registry).runs
    assert before[0].versions["task_version"] == before[0].versions["model_version"] == 1
    first = run_suite(before, registry, tmp_path / "out", "cpu")
    assert len(first.records) == 2 and first.records[0]["versions"]["task_version"] == 1
    assert run_suite(before, registry, tmp_path / "out", "cpu").skipped == 2
    owner = (type(registry.tasks["point_cloud"]) if kind == "task"
             else registry.families["node"])
    monkeypatch.setattr(owner, "version", 2)
    after = load_suite(path, registry).runs
    assert after[0].versions[f"{kind}_version"] == 2 and after[0].key != before[0].key
    again = run_suite(after, registry, tmp_path / "out", "cpu")
    assert again.skipped == 0 and len(again.records) == 2


class _Versioned(Task):
    name = "versioned"
    version = "2"


class _ZeroFamily(Family):
    name = "zero_version"
    version = 0


class _BadVersions:
    @hookimpl
    def harness_tasks(self):
        return [_Versioned]

    @hookimpl
    def harness_model_families(self):
        return [_ZeroFamily]


def test_a_version_that_is_no_positive_integer_is_refused_when_plugins_load():
    registry = load_registry([("bad_versions", _BadVersions())])
    reasons = [failure.reason for failure in registry.failures]
    assert any("task 'versioned': version '2' is not an integer >= 1" in r for r in reasons)
    assert any("family 'zero_version': version 0 is not an integer >= 1" in r for r in reasons)
    assert "versioned" not in registry.tasks and "zero_version" not in registry.families


def _versioned(seed: int, task_version: int | None, **fields) -> dict:
    run = record("point_cloud", "hbnode", seed, [epoch(1, forward_nfe=10.0 + seed)], **fields)
    run["key"] += f"/v{task_version}"
    if task_version is not None:
        run["versions"] = {"task": "harness 0.1.0", "model": "harness 0.1.0",
                           "task_version": task_version, "model_version": 1}
    return run


def test_records_of_an_older_task_version_are_a_group_of_their_own_and_called_older(tmp_path):
    """Seed 0 recorded before versions were kept, seeds 0–1 at version 1, seed 1 at version 2:
    three groups, none mixing versions; the two older ones are named on the page."""
    runs = [_versioned(0, None), _versioned(0, 1), _versioned(1, 1), _versioned(1, 2)]
    groups = group_runs(runs)
    unrecorded = "hbnode (task_version=None, model_version=None)"
    assert [(g.label, len(g.runs)) for g in groups] == [
        (unrecorded, 1), ("hbnode (task_version=1, model_version=1)", 2),
        ("hbnode (task_version=2, model_version=1)", 1)]
    assert [g.label for g in older(groups)] == [unrecorded,
                                                "hbnode (task_version=1, model_version=1)"]
    write_records(tmp_path / "results", runs)
    written = write_page([tmp_path / "results"], tmp_path / "report", paper_claims=False,
                         formats=("png",))
    page = written.markdown.read_text()
    assert (f"Older versions: {unrecorded}, hbnode (task_version=1, model_version=1) — "
            in page)


def test_compare_names_groups_made_with_another_task_version():
    base = [_versioned(seed, 1) for seed in (0, 1)]
    new = [_versioned(seed, 2) for seed in (0, 1)]
    comparison = compare(base, new)
    assert comparison.versions == ["point_cloud/hbnode [test]: task_version 1 → 2"]
    assert "another version of the task or model on each side" in render(comparison)
    assert compare(base, base).versions == []
    unrecorded = compare([_versioned(0, None)], [_versioned(0, 1)])
    assert unrecorded.versions == ["point_cloud/hbnode [test]: task_version unrecorded → 1, "
                                   "model_version unrecorded → 1"]


def _solo_and_ensemble(tmp_path: Path, suites: tuple[str, str]) -> list[Path]:
    """Two directories holding the same two runs (same keys): solo in one, in an ensemble in
    the other."""
    directories = []
    for name, suite in zip(("pc-solo", "pc-ens"), suites):
        runs = [record("point_cloud", "hbnode", seed, [epoch(1), epoch(2)], suite=suite)
                for seed in (0, 1)]
        for run in runs:
            run["key"] = f"point_cloud/hbnode/{run['seed']}"
            if name == "pc-ens":
                run["ensemble"] = {"id": "e", "size": 2, "index": run["seed"]}
        write_records(tmp_path / name, runs)
        directories.append(tmp_path / name)
    return directories


def test_the_same_runs_in_two_directories_are_all_shown(tmp_path):
    directories = _solo_and_ensemble(tmp_path, ("pc-solo", "pc-ens"))
    assert len(load_results(directories)) == 4
    written = write_page(directories, tmp_path / "report", paper_claims=False, formats=("png",))
    page = written.markdown.read_text()
    assert "4 run records" in page
    assert "point_cloud (pc-solo)" in page and "point_cloud (pc-ens)" in page


def test_one_suite_name_in_two_directories_is_shown_once_per_directory(tmp_path):
    directories = _solo_and_ensemble(tmp_path, ("pc", "pc"))
    written = write_page(directories, tmp_path / "report", paper_claims=False, formats=("png",))
    page = written.markdown.read_text()
    assert f"pc ({directories[0]})" in page and f"pc ({directories[1]})" in page
    assert "Suite names found in more than one of the directories: pc." in page
    summary = written.summary.with_suffix(".csv").read_text().splitlines()
    assert len(summary) == 3 and all(",2,0," in line for line in summary[1:])  # 2 ok, 0 failed


def test_the_time_figure_leaves_ensemble_members_out(tmp_path):
    solo = [record("point_cloud", "node", 0, [epoch(1, train_time_s=1.0),
                                              epoch(2, train_time_s=2.0)])]
    members = [record("point_cloud", "hbnode", seed, [epoch(1, train_time_s=50.0),
                                                      epoch(2, train_time_s=60.0)])
               for seed in (0, 1)]
    for index, member in enumerate(members):
        member["ensemble"] = {"id": "e", "size": 2, "index": index}
    figure = figures.time_per_epoch(group_runs(solo + members), tmp_path, ("png",))
    assert [series.label for series in figure.panels[0].series] == ["node"]
    assert "ensemble are left out" in figure.caption
    assert figures.time_per_epoch(group_runs(members), tmp_path, ("png",)) is None
    nfe = figures.nfe_per_epoch(group_runs(members), tmp_path, ("png",))
    assert [series.label for series in nfe.panels[0].series] == ["hbnode"]  # NFE still count
