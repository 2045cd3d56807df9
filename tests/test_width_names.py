"""A suite's ``widths:`` hold only names a model it applies to reads (Task.width_names), and
every name its task always reads: checked when the suite loads, before anything runs."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness import Task, WidthNames, hookimpl
from harness.cli import main
from harness.plugins import Registry, load_registry
from harness.suites.loader import load_suite
from tests.test_suite import problems, write

SUITES = Path(__file__).parents[1] / "suites"


class Tabled(Task):
    """A third-party task written before width names were declared: its table names n, h."""

    name = "tabled"
    widths = {"node": {"n": 2, "h": 8}, "anode": {"n": 3, "h": 8}}
    baselines = {"mlp": {"hidden": 16}}


class Untabled(Task):
    """A third-party task with no widths at all: a suite gives them, and names anything."""

    name = "untabled"


class Declared(Task):
    """A third-party task reading an optional width its table does not hold."""

    name = "declared"
    widths = {"node": {"n": 2}}
    width_names = WidthNames(required={"n"}, optional={"extra"})


class Contradicted(Task):
    """A task whose own table holds a width its declaration does not name."""

    name = "contradicted"
    widths = {"node": {"n": 2, "h": 4}}
    width_names = WidthNames(required={"n"})


class Misdeclared(Task):
    """A task declaring a name as a string (``required="h1"`` would be the names h and 1)."""

    name = "misdeclared"
    width_names = WidthNames(required="h1")


class ThirdParty:
    @hookimpl
    def harness_tasks(self) -> list[type[Task]]:
        return [Tabled, Untabled, Declared, Contradicted, Misdeclared]


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry(extra_plugins=[("widthtasks", ThirdParty())])


@pytest.mark.parametrize("where, at", [
    ("  widths: {n: 2, hh: 32}", "runs[0].widths.hh"),
    ("  grid: {widths: [{n: 2, h: 20}, {n: 2, hh: 32}]}", "runs[0].grid.widths.hh"),
    ("  overrides: {node: {widths: {n: 2, hh: 32}}}", "runs[0].overrides.node.widths.hh"),
])
def test_a_typo_in_widths_is_refused_naming_file_key_and_valid_names(tmp_path, registry, where,
                                                                      at):
    path = write(tmp_path, f"""
        runs:
        - task: point_cloud
          model: node
        {where}
        """)
    (line,) = problems(path, registry)
    assert line.startswith(f"{path}: {at}: unknown width 'hh'"), line
    assert "valid: h, n (did you mean 'h'?)" in line, line


def test_a_typo_in_the_defaults_widths_is_refused(tmp_path, registry):
    path = write(tmp_path, """
        defaults: {widths: {n: 2, h: 20, hh: 3}}
        runs: [{task: point_cloud, model: node}]
        """)
    (line,) = problems(path, registry)
    assert line.startswith(f"{path}: defaults.widths.hh: unknown width 'hh'"), line


def test_a_dry_run_reports_it_before_anything_runs(tmp_path, registry, capsys):
    path = write(tmp_path, """
        runs: [{task: point_cloud, model: node, widths: {n: 2, hh: 32}}]
        """)
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--dry-run"]) != 0
    error = capsys.readouterr().err
    assert "runs[0].widths.hh: unknown width 'hh'" in error and "Traceback" not in error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("task", ["plane_vibration", "walker2d"])
def test_an_optional_width_is_accepted(tmp_path, registry, task):
    """The sequence tasks read c only when given (``widths.get("c", state)``)."""
    path = write(tmp_path, f"""
        runs: [{{task: {task}, model: node, widths: {{n: 4, h1: 8, h2: 8, c: 3}}}}]
        """)
    (run,) = load_suite(path, registry).runs
    assert run.widths == {"n": 4, "h1": 8, "h2": 8, "c": 3}


@pytest.mark.parametrize("task", ["plane_vibration", "walker2d"])
def test_an_optional_width_may_be_zero_a_required_one_not(tmp_path, registry, task):
    """``c: 0`` (no initial-state layer: Walker2D's own widths hold it) loads; ``h1: 0``
    is refused naming the key and what is valid."""
    path = write(tmp_path, f"""
        runs: [{{task: {task}, model: node, widths: {{n: 4, h1: 8, h2: 8, c: 0}}}}]
        """)
    (run,) = load_suite(path, registry).runs
    assert run.widths["c"] == 0
    path = write(tmp_path, f"""
        runs: [{{task: {task}, model: node, widths: {{n: 4, h1: 0, h2: 8}}}}]
        """)
    (line,) = problems(path, registry)
    assert "runs[0].widths.h1" in line and "0 is not > 0" in line, line


def test_a_width_the_task_always_reads_is_required(tmp_path, registry):
    """A suite's widths replace the task's whole: one lacking h2 is refused when it loads,
    not when the run builds its model."""
    path = write(tmp_path, """
        runs: [{task: plane_vibration, model: node, widths: {n: 4, h1: 8}}]
        """)
    (line,) = problems(path, registry)
    assert line.startswith(f"{path}: runs[0]: "), line
    # worded as a run's set-up words a width it lacks, the widths as the suite writes them
    assert ("widths has no 'h2', which task 'plane_vibration' reads to build family 'node' "
            "(given: {n: 4, h1: 8}); a suite's widths replace the task's whole") in line, line
    assert "valid: widths with h1, h2, n, optionally c" in line, line


def test_a_baseline_reads_its_own_names(tmp_path, registry):
    """ODE-Net's ResNet reads n and blocks, not h (RK-Net's)."""
    path = write(tmp_path, """
        runs: [{task: mnist_odenet, baseline: resnet, widths: {n: 64, blocks: 2, h: 64}}]
        """)
    (line,) = problems(path, registry)
    assert "runs[0].widths.h: unknown width 'h': not read by resnet" in line, line
    assert "valid: blocks, n" in line, line


def test_a_grid_shared_by_a_family_and_a_baseline_takes_the_names_of_either(tmp_path, registry):
    """cnf-paper pairs the CNF's widths (n, M, h) with the planar flow's (K) in one grid point,
    so their runs compare: each name is read by one of the two."""
    path = write(tmp_path, """
        runs:
        - task: cnf_toy
          model: node
          baselines: [planar]
          grid: {widths: [{n: 2, M: 1, h: 32, K: 1}, {n: 2, M: 32, h: 32, K: 32}]}
        """)
    runs = load_suite(path, registry).runs
    assert {(run.model, run.widths["K"]) for run in runs} == {("node", 1), ("node", 32),
                                                             ("planar", 1), ("planar", 32)}
    assert len(load_suite(SUITES / "cnf-paper.yaml", registry).runs) == 90
    alone = write(tmp_path, """
        runs: [{task: cnf_toy, model: node, widths: {n: 2, M: 1, h: 32, K: 1}}]
        """)
    (line,) = problems(alone, registry)
    assert "runs[0].widths.K: unknown width 'K': not read by node on task(s) cnf_toy" in line
    only_planar = write(tmp_path, """
        runs: [{task: cnf_toy, model: node, baselines: [planar],
                overrides: {planar: {widths: {K: 4, M: 4}}}}]
        """)
    (line,) = problems(only_planar, registry)
    assert "runs[0].overrides.planar.widths.M: unknown width 'M': not read by planar" in line


def test_a_task_without_declarations_takes_the_names_of_its_table(tmp_path, registry):
    path = write(tmp_path, """
        runs:
        - {task: tabled, model: sonode, widths: {n: 4, h: 2}}
        - {task: tabled, baseline: mlp, widths: {hidden: 3}}
        - {task: untabled, model: node, widths: {anything: 1}}
        - {task: declared, model: node, widths: {n: 1, extra: 2}}
        """)
    assert [run.widths for run in load_suite(path, registry).runs] == [
        {"n": 4, "h": 2}, {"hidden": 3}, {"anything": 1}, {"n": 1, "extra": 2}]
    typo = write(tmp_path, """
        runs: [{task: tabled, model: node, widths: {n: 4, hidden: 2}}]
        """)
    (line,) = problems(typo, registry)
    assert "runs[0].widths.hidden: unknown width 'hidden'" in line and "valid: h, n" in line


def test_a_task_contradicting_its_own_table_or_misdeclaring_is_refused_when_plugins_load(
        registry):
    assert "contradicted" not in registry.tasks and "misdeclared" not in registry.tasks
    contradicted, misdeclared = [f.reason for f in registry.failures]
    assert "widths['node'] holds h, which its width names do not declare" in contradicted
    assert "task 'misdeclared': width_names is WidthNames(required='h1', optional=()); valid: " \
           "a harness.WidthNames of collections of names" in misdeclared
