"""Memory measured per run (``memory: true``, docs/memory.md): the bytes a training step holds
for backward on the CPU, flat in the number of solver steps and in the integration time with
the adjoint and growing with them without it; the measurement changes no number the run
computes."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.gates.budgets import check, load_budgets
from harness.record import record_problem
from harness.reports.tables import summarize, table
from harness.running.driver import run_suite
from harness.running.ensembles import refusal
from harness.running.runner import execute_run
from harness.running.store import read_records
from harness.solvers.settings import SolverConfig
from harness.toolkit import Autonomous, ODEBlock, mlp
from harness.toolkit.memory import MemoryMeter
from harness.toolkit.nfe import NFECounter
from harness_plugins.models.node import NODE
from tests.conftest import CPU, make_spec

TINY = {"inner": 10, "outer": 20}
STEPS = (0.25, 0.125, 0.0625)  # 4, 8 and 16 rk4 steps over [0, 1]


def run(step_size: float, adjoint: bool, memory: bool = True, model: str = "node",
        registry=None) -> dict:
    spec = make_spec(model=model, epochs=2, memory=memory, task_options=TINY, batch_size=15,
                     widths={"n": 2, "h": 8},
                     solver={"method": "rk4", "adjoint": adjoint,
                             "options": {"step_size": step_size}})
    record = execute_run(spec, registry, CPU)
    assert record["status"] == "ok", record.get("error")
    assert record_problem(record) is None
    return record


def peaks(record: dict, phase: str) -> list[int]:
    return [epoch[f"{phase}_memory_bytes"] for epoch in record["epochs"]]


@pytest.mark.parametrize("model", ["node", "hbnode"])
def test_adjoint_memory_is_flat_in_the_steps_and_backpropagation_grows_with_them(registry,
                                                                                 model):
    """The paper's O(1) against O(L): with the adjoint the step holds the same bytes at 4, 8
    and 16 steps (forward: the solve saves nothing but its ends; backward: the adjoint's graph
    of one step at a time); backpropagating through the solver holds every step's graph, so
    doubling the steps nearly doubles the bytes."""
    adjoint = [run(h, True, model=model, registry=registry) for h in STEPS]
    through = [run(h, False, model=model, registry=registry) for h in STEPS]
    for phase in ("forward", "backward"):
        flat = [peaks(record, phase) for record in adjoint]
        assert all(flat[0][0] > 0 and p == flat[0] for p in flat), flat  # every epoch, every T
        growing = [peaks(record, phase)[0] for record in through]
        for fewer, more in zip(growing, growing[1:]):
            assert 1.8 < more / fewer < 2.1, growing
        assert growing[0] > 5 * flat[0][0]
    assert peaks(adjoint[0], "backward")[0] > peaks(adjoint[0], "forward")[0]  # the adjoint's own


def step_bytes(end: float, adjoint: bool) -> dict[str, int]:
    """The bytes one training step holds, per phase: a NODE block integrated over [0, end] by
    rk4 in steps of 0.25 (4·end steps), the loss read at the end."""
    torch.manual_seed(0)
    config = SolverConfig(method="rk4", adjoint=adjoint, options={"step_size": 0.25})
    block = ODEBlock(NODE(), Autonomous(mlp([2, 8, 2], nn.Tanh)), 2, config, NFECounter())
    meter = MemoryMeter(CPU)
    with meter.in_phase("forward"):
        loss = block.through(torch.randn(15, 2), torch.tensor([0.0, end]))[-1].pow(2).sum()
    with meter.in_phase("backward"):
        loss.backward()
    return meter.take()


def test_adjoint_memory_is_flat_in_the_integration_time_and_backpropagation_grows_with_it():
    """The same claim over the integration time T = 1, 2, 4 at a fixed step (issue 28's sweep
    "in integration time"): the adjoint's bytes do not change with T; through the solver they
    double with T, as its steps do."""
    ends = (1.0, 2.0, 4.0)
    adjoint = [step_bytes(end, True) for end in ends]
    through = [step_bytes(end, False) for end in ends]
    assert adjoint[0]["forward"] > 0 and all(peaks == adjoint[0] for peaks in adjoint), adjoint
    for phase in ("forward", "backward"):
        for shorter, longer in zip(through, through[1:]):
            assert 1.8 < longer[phase] / shorter[phase] < 2.1, through
        assert through[0][phase] > 5 * adjoint[0][phase]


def test_the_measurement_changes_no_number(registry):
    """Losses, metrics and NFE of every epoch are the same with and without the meter (times
    aside); without it the memory fields are null."""
    for adjoint in (True, False):
        measured, plain = (run(0.125, adjoint, memory, registry=registry)
                           for memory in (True, False))
        for with_meter, without in zip(measured["epochs"], plain["epochs"]):
            assert without.get("forward_memory_bytes") is None
            assert without.get("backward_memory_bytes") is None
            for name, value in without.items():
                if not name.endswith(("_time_s", "_memory_bytes")):
                    assert with_meter[name] == value, name


def test_a_saved_storage_counts_once_and_is_let_go():
    """Two saved views of one storage count once; what autograd frees leaves the live count,
    so a second step peaks where the first did."""
    meter = MemoryMeter(CPU)
    weight = torch.ones(4, 4, requires_grad=True)
    base = torch.ones(8, 4, requires_grad=True)
    for _ in range(2):
        with meter.in_phase("forward"):
            loss = (base[:4] @ weight).sum() + (base[4:] @ weight).sum()
        with meter.in_phase("backward"):
            loss.backward()
        assert meter.live == 0 and not meter.holders
    # base (128 bytes) once though both halves are saved; weight (64 bytes) once
    assert meter.take() == {"forward": 128 + 64, "backward": 128 + 64}
    assert meter.take() == {}


def test_a_disabled_meter_takes_nothing():
    meter = MemoryMeter(CPU, enabled=False)
    with meter.in_phase("forward"):
        (torch.ones(3, requires_grad=True) * 2).sum().backward()
    assert meter.take() == {}


def test_runs_measuring_memory_train_alone(registry, tmp_path, caplog):
    """An ensemble's step holds every member's tensors at once: no member's own number, so a
    run measuring memory is refused as a member: in a suite run as ensembles it trains alone,
    says so, and records its own memory."""
    assert refusal(make_spec(model="node"), registry) is None
    specs = [make_spec(model="node", seed=seed, epochs=1, memory=True, task_options=TINY,
                       solver={"method": "rk4", "options": {"step_size": 0.5}})
             for seed in (0, 1)]
    run_suite(specs, registry, tmp_path, CPU, ensemble=2)
    records = read_records(tmp_path)
    assert "it measures memory, which is a run's own" in caplog.text
    assert [record.get("ensemble") for record in records] == [None, None]
    assert all(record["epochs"][0]["backward_memory_bytes"] > 0 for record in records)


@pytest.fixture(scope="module")
def measured(registry) -> list[dict]:
    """Runs through the solver at 4 and 8 steps, measuring memory; one without."""
    return [run(0.25, False, registry=registry), run(0.125, False, registry=registry),
            run(0.25, True, memory=False, registry=registry)]


def test_tables_show_memory_in_mb_where_runs_have_it(measured):
    headers, cells = table(summarize(measured))
    column = headers.index("backward memory (MB)")
    values = [row[column] for row in cells]
    bytes_ = [peaks(record, "backward")[0] for record in measured[:2]]
    assert values == [f"{bytes_[0] * 1e-6:.4g}", f"{bytes_[1] * 1e-6:.4g}", "—"]
    headers, _ = table(summarize(measured[2:]))
    assert not any("memory" in header for header in headers)  # none measured: no column


def test_budgets_bound_memory(measured, tmp_path):
    """A ceiling on backward_memory_bytes passes over the runs that measured it, fails below
    them, and fails (never passes) on runs that did not measure it."""
    at_4 = peaks(measured[0], "backward")[0]
    path = tmp_path / "budgets.yaml"
    path.write_text(f"""
budgets:
  - {{task: point_cloud, model: node, solver: {{adjoint: false, options: {{step_size: 0.25}}}},
     max: {{backward_memory_bytes: {at_4}}}}}
  - {{task: point_cloud, model: node, solver: {{adjoint: false, options: {{step_size: 0.125}}}},
     max: {{backward_memory_bytes: {at_4}}}}}
  - {{task: point_cloud, model: node, solver: {{adjoint: true}}, max: {{forward_memory_bytes: 1}}}}
""")
    budgets, _ = load_budgets(path)
    verdicts = check(budgets, measured)
    assert [v.problem is None for v in verdicts] == [True, False, False]
    assert verdicts[1].measured == peaks(measured[1], "backward")[0]
    assert verdicts[2].measured is None


def test_a_memory_field_that_is_no_number_is_a_bad_record():
    """The store checks the bytes like NFE: a record whose epoch holds text there is refused."""
    epoch = {"epoch": 1, "iterations": 1, "forward_memory_bytes": "1 MB"}
    record = {"key": "k", "task": "t", "model": "m", "seed": 0, "status": "ok", "epochs": [epoch]}
    assert "'forward_memory_bytes' is '1 MB', not a number" in record_problem(record)
