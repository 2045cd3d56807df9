"""The ``scaling`` claim check (harness/reports/claim_scaling.py): the exponent of a value
against a configuration key, decided on the numbers — the paper's O(1) memory with the adjoint
against O(L) through the solver, on planted records."""
from __future__ import annotations

import pytest

from harness.reports.claims import ClaimsError, load_claims
from tests.claim_records import claims_file, verdict
from tests.result_records import epoch, record

STEPS = (0.25, 0.125, 0.0625)


def memory_run(model: str, seed: int, step: float, adjoint: bool, nbytes: float,
               status: str = "ok") -> dict:
    """A run at ``solver.options.step_size`` ``step`` whose step held ``nbytes``."""
    epochs = [epoch(1, backward_memory_bytes=nbytes)] if status == "ok" else []
    run = record("pc", model, seed, epochs, status=status)
    run["config"]["solver"].update(method="rk4", adjoint=adjoint, options={"step_size": step})
    run["key"] += f"/{step}/{adjoint}"
    return run


def sweep(model: str = "node", flat: float = 6e3, per_step: float = 1.6e4,
          steps=STEPS) -> list[dict]:
    """Adjoint runs holding ``flat`` bytes at every step size, and runs through the solver
    holding ``per_step`` bytes per step (1 / step_size steps), two seeds each."""
    return [memory_run(model, seed, h, adjoint, flat if adjoint else per_step / h)
            for seed in (0, 1) for h in steps for adjoint in (True, False)]


def check(adjoint: bool, low: float, high: float, models: str = "[node]") -> str:
    return (f"      - scaling: {{value: backward_memory_bytes, over: solver.options.step_size, "
            f"models: {models}, where: {{solver.adjoint: [{str(adjoint).lower()}]}}, "
            f"exponent: {{min: {low}, max: {high}}}}}\n")


def test_constant_with_the_adjoint_and_linear_without_holds(tmp_path):
    result, evidence = verdict(tmp_path, check(True, -0.05, 0.05) + check(False, -1.1, -0.9),
                               sweep())
    assert result == "holds", evidence
    assert any("exponent +0.000" in line for line in evidence)
    assert any("exponent -1.000" in line for line in evidence)


def test_memory_growing_where_it_is_claimed_constant_refutes(tmp_path):
    result, evidence = verdict(tmp_path, check(False, -0.05, 0.05), sweep())
    assert result == "refuted" and "claimed in [-0.05, 0.05]" in evidence[0]


def test_one_step_size_or_a_failed_run_leaves_it_incomplete(tmp_path):
    one = [memory_run("node", seed, 0.25, False, 1e5) for seed in (0, 1)]
    result, evidence = verdict(tmp_path, check(False, -1.1, -0.9), one)
    assert result == "incomplete" and "an exponent needs two or more" in evidence[0]
    failed = sweep() + [memory_run("node", 2, 0.125, False, 0, status="failed")]
    result, evidence = verdict(tmp_path, check(False, -1.1, -0.9), failed)
    assert result == "incomplete" and any("1 runs failed" in line for line in evidence)


def test_no_run_of_its_models_is_not_run(tmp_path):
    assert verdict(tmp_path, check(True, -0.05, 0.05, "[hbnode]"), sweep())[0] == "not run"


@pytest.mark.parametrize("bounds, expected", [
    ("{min: 1, max: 0}", "min is above max"), ("{lowest: 0}", "not bounds on an exponent")])
def test_bad_bounds_are_clear_errors(tmp_path, bounds, expected):
    path = claims_file(tmp_path, f"      - scaling: {{value: backward_memory_bytes, over: "
                                 f"solver.options.step_size, models: [node], "
                                 f"exponent: {bounds}}}\n")
    with pytest.raises(ClaimsError, match=expected) as error:
        load_claims(path)
    assert "scaling.exponent" in str(error.value)
