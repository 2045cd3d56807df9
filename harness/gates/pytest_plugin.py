"""A pytest plugin (entry point ``pytest11``) to gate a model's NFE inside a test suite.

    def test_damped_nfe(harness_budget):
        result = harness_budget.run(task="point_cloud", model="damped", epochs=2,
                                    solver={"method": "dopri5", "tol": 1.0e-3})
        result.within(forward_nfe=40, backward_nfe=50, at_least={"test_accuracy": 0.6})

``run`` takes the settings of a suite entry, checked the same way. With pytest-benchmark, the
run is timed through its ``benchmark`` fixture (so ``--benchmark-compare`` covers wall time)
and the NFE go into the benchmark's ``extra_info``; pytest-benchmark cannot gate on
extra_info, so ``within`` does the NFE gate.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


class RunResult:
    """A finished run's record, with an assertion against a budget."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record

    def within(self, tolerance: float = 0.0, at: str = "mean",
               at_least: dict[str, float] | None = None, **ceilings: float) -> None:
        """Assert the run ended ok and keeps ``ceilings`` (e.g. ``forward_nfe=40``, mean per
        iteration over epochs, or the last epoch with ``at="last"``) and the floors
        ``at_least`` (last epoch), each with the relative ``tolerance``."""
        from harness.gates.budgets import Budget, check, render

        record = self.record
        assert record["status"] == "ok", f"{record['task']}/{record['model']} failed: {record['error']}"
        budget = Budget(record["task"], record["model"], at=at, max=dict(ceilings),
                        min=dict(at_least or {}), tolerance=tolerance)
        verdicts = check([budget], [record])
        if not all(v.passed for v in verdicts):
            raise AssertionError("NFE budget exceeded:\n" + render(verdicts))


class BudgetRunner:
    """Runs one tiny run spec inside a test (the ``harness_budget`` fixture)."""

    def __init__(self, benchmark: Any | None) -> None:
        self.benchmark = benchmark

    def run(self, task: str, model: str, seed: int = 0, device: str = "cpu",
            **settings: Any) -> RunResult:
        import torch

        from harness.plugins import load_registry
        from harness.running.runner import execute_run
        from harness.suites.loader import suite_from_document

        registry = load_registry()
        entry = {"task": task, "model": model, "seed": seed, **settings}
        (spec,) = suite_from_document({"name": "pytest", "runs": [entry]}, Path("<harness_budget>"),
                                      registry).runs
        execute = lambda: execute_run(spec, registry, torch.device(device))  # noqa: E731
        if self.benchmark is None:
            return RunResult(execute())
        record = self.benchmark.pedantic(execute, rounds=1, iterations=1)
        last = record["epochs"][-1] if record["epochs"] else {}
        self.benchmark.extra_info.update(
            {name: last.get(name) for name in ("forward_nfe", "backward_nfe", "eval_nfe")})
        return RunResult(record)


@pytest.fixture
def harness_budget(request: pytest.FixtureRequest) -> BudgetRunner:
    """Run a tiny harness run in a test and check its NFE against a budget."""
    has_benchmark = request.config.pluginmanager.hasplugin("benchmark")
    return BudgetRunner(request.getfixturevalue("benchmark") if has_benchmark else None)
