"""The third-party path: the example packages in examples/ (AdamNODE, NesterovNODE, a damped
Hamiltonian family that calls autograd inside its right-hand side), the plugin
guide that shows their code, contract versions, and a suite naming a broken plugin."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from harness.plugins import load_registry
from harness.running.driver import run_suite
from harness.suites.loader import SuiteError, load_suite

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "adamnode"
EXAMPLES = (EXAMPLE, ROOT / "examples" / "nesterovnode", ROOT / "examples" / "hamiltonian")


def test_the_installed_example_appears_with_its_package(registry):
    assert "adamnode" in registry.families, "install it: pip install -e examples/adamnode"
    assert registry.package_of("model", "adamnode") == "harness-adamnode"
    assert registry.families["adamnode"].parts == ("h", "m", "v")


def test_the_examples_suite_runs_it_beside_the_builtins(tmp_path, registry):
    suite = load_suite(EXAMPLE / "suite.yaml", registry)
    assert [r.model for r in suite.runs] == ["node", "anode", "sonode", "hbnode", "ghbnode", "adamnode"]
    tiny = [r for r in suite.runs if r.model in ("hbnode", "adamnode")]
    tiny = [dataclasses.replace(r, epochs=2) for r in tiny]
    outcome = run_suite(tiny, registry, tmp_path, "cpu")
    adam = next(r for r in outcome.records if r["model"] == "adamnode")
    # f 2→14→14→2 (282), initial velocity 2→14→14→(3·2 − 2) (312), head (3), a1 and a2 (2)
    assert adam["status"] == "ok" and adam["params"] == 282 + 312 + 3 + 2
    assert adam["epochs"][-1]["forward_nfe"] > 0 and adam["epochs"][-1]["backward_nfe"] > 0


def code_blocks(markdown: str) -> list[str]:
    return re.findall(r"```(?:python|toml)\n(.*?)```", markdown, flags=re.S)


def test_the_guides_code_is_the_example_packages_and_built_in_families_code():
    """Every model-plugin block of the guide is code of an example package or a built-in family.
    Section 8's executor is a sketch around a queue client the reader brings (``connect()``);
    its complete, tested counterpart is plugins/executors/slurm.py, so that section is left out."""
    guide = (ROOT / "docs" / "plugin-guide.md").read_text().split("## 8. Write an executor")[0]
    sources = "\n".join(p.read_text() for folder in (*EXAMPLES, ROOT / "plugins" / "models")
                        for p in folder.iterdir() if p.suffix in (".py", ".toml"))
    blocks = code_blocks(guide)
    assert len(blocks) == 6
    for block in blocks:
        assert block.strip() in sources, f"the guide shows code the example does not have:\n{block}"


class FromTheFuture:
    HARNESS_CONTRACT = 99


def test_a_plugin_needing_a_newer_contract_is_refused_clearly():
    registry = load_registry([("future", FromTheFuture())])
    (failure,) = [f for f in registry.failures if f.plugin == "future"]
    assert "needs plugin contract 99, but this harness has contract 2: upgrade harness" in failure.reason


def test_a_suite_naming_a_broken_plugins_model_fails_with_that_reason(tmp_path, monkeypatch):
    from importlib.metadata import EntryPoint
    import harness.plugins

    real = harness.plugins.entry_points
    broken = EntryPoint("nesterov", "harness_nesterov_missing_module", "harness")
    monkeypatch.setattr(harness.plugins, "entry_points", lambda group: [*real(group=group), broken])
    registry = load_registry()
    path = tmp_path / "suite.yaml"
    path.write_text("runs: [{task: point_cloud, model: nesterov}]\n")
    with pytest.raises(SuiteError) as error:
        load_suite(path, registry)
    message = str(error.value)
    assert f"{path}: runs[0].model: unknown model 'nesterov'" in message
    assert "plugin 'nesterov' (package ?) failed to load: import failed" in message
    assert "harness_nesterov_missing_module" in message


def test_a_family_with_its_own_interval_is_solved_over_it(registry):
    """NesterovNODE integrates over [1, 2]: the forward solve starts at t = 1 and never sees an
    earlier time, with or without per-element durations."""
    import torch
    from torch import nn

    from harness.toolkit.nfe import NFECounter
    from harness.toolkit.ode import ODEBlock
    from harness.solvers.settings import SolverConfig

    family = registry.families["nesterovnode"]
    assert registry.package_of("model", "nesterovnode") == "harness-nesterovnode"
    assert family.interval == (1.0, 2.0)
    times: list[float] = []

    class Recording(nn.Module):
        def forward(self, t, h):
            times.append(float(t))
            return torch.tanh(h)

    block = ODEBlock(family(), Recording(), 2, SolverConfig(rtol=1e-5, atol=1e-5),
                     NFECounter())
    z0 = torch.randn(2, 4, generator=torch.Generator().manual_seed(0))
    for duration in (None, torch.tensor([0.5, 3.0])):
        times.clear()
        block(z0, duration=duration)
        assert times[0] == 1.0 and min(times) == 1.0 and max(times) > 1.99


@pytest.mark.parametrize("adjoint", [True, False])
def test_a_family_calling_autograd_inside_f_trains_in_every_grad_mode(tmp_path, registry,
                                                                      adjoint):
    """The Hamiltonian example: with the adjoint, its derivatives run under no_grad (forward
    solve, evaluation) and with a graph (the adjoint solve); without, with a graph in training.
    Both train with NFE counted (the conformance kit checks that the adjoint's gradients equal
    backprop's)."""
    from tests.conftest import make_spec

    assert registry.package_of("model", "hamiltonian") == "harness-hamiltonian", \
        "install it: pip install -e examples/hamiltonian"
    spec = make_spec(model="hamiltonian", epochs=2, solver={"adjoint": adjoint})
    (record,) = run_suite([spec], registry, tmp_path, "cpu").records
    assert record["status"] == "ok", record["traceback"]
    last = record["epochs"][-1]
    assert last["forward_nfe"] > 0 and last["eval_nfe"] > 0
    assert (last["backward_nfe"] > 0) if adjoint else last["backward_nfe"] is None
