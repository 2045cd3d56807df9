"""The solver's settings, declared once (harness.solvers.settings.SOLVER_SETTINGS): every one is
checked in a suite, hashed in the run key, a budget line's solver key and named in a report's
setting label; run keys are those they were; a run's backend reads its options once."""
from __future__ import annotations

import pickle
from dataclasses import fields, replace
from pathlib import Path

import pytest
import torch

from harness.gates.budgets import Budget, check, load_budgets, measured_at, updated_budgets
from harness.reports.aggregate import group_runs
from harness.solvers.fast import backend as fast_backend
from harness.solvers.proximal import backend as proximal_backend
from harness.solvers.settings import SOLVER_SETTINGS, SolverConfig
from harness.suites.loader import SuiteError, suite_from_document
from harness.suites.runspec import RunSpec
from harness.toolkit.forcing import solve_with_input
from harness.toolkit.networks import Autonomous
from harness.toolkit.nfe import NFECounter
from harness.toolkit.ode import ODEBlock
from tests.result_records import epoch, record

#: A value other than the default for each solver setting, valid in a suite, and one that is not.
#: A setting added to SolverConfig without a line here fails these tests: add its line.
SAMPLES = {"method": ("rk4", "rk5"), "rtol": (1e-3, -1.0), "atol": (1e-4, 0), "adjoint": (False, "no"),
           "backend": ("fast", "fastest"), "options": ({"step_size": 0.25}, [1]),
           "max_nfe": (500, 0.5)}

VERSIONS = {"task": "toy", "task_version": 1, "model": "node", "model_version": 1}


def spec(**solver) -> RunSpec:
    return RunSpec("ci", "point_cloud", "hbnode", 3, solver=SolverConfig(**solver),
                   versions=VERSIONS)


def test_every_field_of_the_solver_config_is_a_declared_setting():
    assert list(SOLVER_SETTINGS) == [f.name for f in fields(SolverConfig)]
    for name, declared in SOLVER_SETTINGS.items():
        assert {"positive", "among", "structured", "keyed_from_default",
                "decides_nfe"} <= set(declared.metadata), name
    assert set(SAMPLES) == set(SOLVER_SETTINGS)


def test_run_keys_are_the_keys_they_were():
    """Pinned from the code before the settings were declared once: records keep their keys."""
    assert spec().key == "78dc93269ce19226"
    assert spec(method="rk4", backend="fast", options={"step_size": 0.1}).key == "38231ef67fe15583"
    assert spec(rtol=1e-4, atol=1e-5, adjoint=False, max_nfe=500).key == "6f4914e51c4b158d"
    assert replace(spec(), precision="float64").key == "8c683b71916c48ea"


@pytest.mark.parametrize("name", list(SAMPLES))
def test_each_solver_setting_is_checked_in_a_suite(name, registry):
    good, bad = SAMPLES[name]
    entry = {"task": "point_cloud", "model": "node", "solver": {name: good}}
    (run,) = suite_from_document({"runs": [entry]}, Path("s.yaml"), registry).runs
    assert getattr(run.solver, name) == good
    entry["solver"] = {name: bad}
    with pytest.raises(SuiteError, match=rf"s\.yaml: runs\[0\]\.solver\.{name}"):
        suite_from_document({"runs": [entry]}, Path("s.yaml"), registry)


@pytest.mark.parametrize("name", list(SAMPLES))
def test_each_solver_setting_is_hashed_in_the_key(name):
    assert spec(**{name: SAMPLES[name][0]}).key != spec().key


@pytest.mark.parametrize("name", list(SAMPLES))
def test_each_solver_setting_narrows_a_budget_line(name, tmp_path):
    good = SAMPLES[name][0]
    path = tmp_path / "b.yaml"
    path.write_text(f"budgets: [{{task: t, model: m, solver: {{{name}: {good!r}}}, "
                    "max: {forward_nfe: 3}}]\n".replace("'", ""))
    assert load_budgets(path)[0][0].solver == {name: good}


@pytest.mark.parametrize("name", list(SAMPLES))
def test_each_solver_setting_that_varies_is_named_in_the_report_label(name):
    """Two runs apart in one solver setting are two groups, each label naming it (a mapping
    such as ``options`` by its keys: here two step sizes)."""
    default, named = SolverConfig().as_dict()[name], name
    if name == "options":
        default, named = {"step_size": 0.5}, "step_size"
    runs = []
    for value in (default, SAMPLES[name][0]):
        run = record("pc", "node", 0, [epoch(1)])
        run["key"] += str(value)
        run["config"]["solver"] = {**SolverConfig().as_dict(), name: value}
        runs.append(run)
    labels = [group.label for group in group_runs(runs)]
    assert len(labels) == 2 and all(f"{named}=" in label for label in labels), labels


def test_budgets_tell_backends_apart():
    """dopri5 on torchdiffeq and on the fast backend are two lines, each judging its own runs."""
    runs = []
    for backend, nfe in (("torchdiffeq", 20.0), ("fast", 40.0)):
        run = record("pc", "node", 0, [epoch(1, forward_nfe=nfe)])
        run["key"] += backend
        run["config"]["solver"] = SolverConfig(rtol=1e-3, atol=1e-3, backend=backend).as_dict()
        runs.append(run)
    assert measured_at(runs[1]) == {"method": "dopri5", "rtol": 1e-3, "atol": 1e-3,
                                    "adjoint": True, "backend": "fast"}
    lines = updated_budgets(runs, [], 0.1)
    assert sorted((b.solver["backend"], b.max["forward_nfe"]) for b in lines) == [
        ("fast", 40.0), ("torchdiffeq", 20.0)]
    (verdict,) = check([Budget("pc", "node", {"backend": "fast"}, max={"forward_nfe": 30})], runs)
    assert verdict.runs == 1 and verdict.measured == 40.0 and not verdict.passed


def _block(registry, config: SolverConfig, f: torch.nn.Module | None = None) -> ODEBlock:
    """An hbnode block of width 2 with a small, tame vector field (the implicit solves converge)."""
    f = f or Autonomous(torch.nn.Linear(2, 2))
    with torch.no_grad():
        for parameter in f.parameters():
            parameter.mul_(0.1)
    return ODEBlock(registry.families["hbnode"](), f, 2,
                    config, NFECounter(), registry.backends[config.backend])


@pytest.mark.parametrize("config, module, reader", [
    (SolverConfig(backend="fast", rtol=1e-5, atol=1e-5), fast_backend, "integrator"),
    (SolverConfig(backend="fast", method="rk4", options={"step_size": 0.1}), fast_backend,
     "integrator"),
    (SolverConfig(backend="proximal", method="bdf2", adjoint=False, options={"steps": 4}),
     proximal_backend, "ProximalOptions")])
def test_a_run_reads_its_solver_options_once_not_on_every_solve(registry, monkeypatch, config,
                                                                module, reader):
    reads = []
    original = getattr(module, reader)
    if reader == "ProximalOptions":
        class Counted(original):
            @classmethod
            def read(cls, options):
                reads.append(options)
                return original.read(options)
        monkeypatch.setattr(module, reader, Counted)
    else:
        monkeypatch.setattr(module, reader, lambda *a: reads.append(a) or original(*a))
    z = torch.randn(3, 4)
    block = _block(registry, config)
    for _ in range(3):
        block(z).sum().backward()
    block.through(z, torch.tensor([0.0, 0.5, 1.0]))
    assert len(reads) == 1
    fed = _block(registry, config, f=torch.nn.Linear(3, 2))  # reads [z, u]: 2 + 1 channels
    for _ in range(3):
        solve_with_input(fed, lambda t: torch.ones(3, 1), z).sum().backward()
    assert len(reads) == 2


def test_an_ode_block_bound_to_its_backend_pickles(registry):
    """Executors may ship models between processes: the bound backend (the fast backend's
    integrator) pickles with the block and solves as the original does."""
    block = _block(registry, SolverConfig(backend="fast", rtol=1e-5, atol=1e-5))
    z = torch.randn(3, 4)
    torch.testing.assert_close(pickle.loads(pickle.dumps(block))(z), block(z))


def test_setting_the_solver_rebinds_the_backend(registry):
    block = _block(registry, SolverConfig(backend="fast", method="rk4", options={"step_size": 0.5}))
    z = torch.randn(3, 4)
    block(z)
    coarse = block.dynamics.counter.take()["forward"]
    block.solver = SolverConfig(backend="fast", method="rk4", options={"step_size": 0.25})
    block(z)
    assert block.dynamics.counter.take()["forward"] == 2 * coarse > 0
