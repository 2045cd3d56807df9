"""Execution: worker pools, Ray, resume after a kill, failure kinds, determinism."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from harness.running.checkpoints import Checkpoints
from harness.running.driver import run_suite
from harness.running.runner import execute_run
from harness.running.store import read_records, results_path
from tests.conftest import CPU, make_spec
from tests.processes import frozen, part_way

RK4 = {"method": "rk4", "options": {"step_size": 0.5}}


def summary(record):
    """What must not change between two executions of the same run."""
    return [(e["loss"], e["forward_nfe"], e["backward_nfe"], e["test_loss"]) for e in record["epochs"]]


def test_same_seed_on_cpu_gives_identical_nfe_and_loss(registry):
    spec = make_spec(model="ghbnode", epochs=3, solver={"rtol": 1e-4, "atol": 1e-4}, batch_size=50)
    first, second = (execute_run(spec, registry, CPU) for _ in range(2))
    assert summary(first) == summary(second)
    other_seed = execute_run(make_spec(model="ghbnode", epochs=3, seed=1, batch_size=50,
                                       solver={"rtol": 1e-4, "atol": 1e-4}), registry, CPU)
    assert summary(other_seed) != summary(first)


def test_a_resumed_run_continues_exactly_where_it_stopped(tmp_path, registry):
    """Interrupt after epoch 2 (a checkpoint stays), resume: the epochs equal an uninterrupted run."""
    spec = make_spec(model="hbnode", epochs=4, solver={"rtol": 1e-4, "atol": 1e-4}, batch_size=50)
    whole = execute_run(spec, registry, CPU)

    class Interrupt(BaseException):
        pass

    def stop_after_two(event, run, **details):
        if event == "epoch_finished" and details["epoch"]["epoch"] == 2:
            raise Interrupt

    checkpoints = Checkpoints(tmp_path)
    with pytest.raises(Interrupt):
        execute_run(spec, registry, CPU, stop_after_two, checkpoints)
    assert checkpoints.path(spec.key).exists()
    resumed = execute_run(spec, registry, CPU, lambda *a, **k: None, checkpoints)
    assert resumed["resumed_from_epoch"] == 2
    assert summary(resumed) == summary(whole)
    assert checkpoints.path(spec.key).exists()  # the driver drops it once the record is stored


@pytest.mark.slow
def test_local_pool_with_two_cpu_workers(tmp_path, registry):
    runs = [make_spec(model=m, epochs=2, solver=RK4) for m in ("node", "sonode", "hbnode", "ghbnode")]
    outcome = run_suite(runs, registry, tmp_path, "cpu", executor="local", workers=2)
    records = {r["model"]: r for r in read_records(tmp_path)}
    assert sorted(records) == ["ghbnode", "hbnode", "node", "sonode"]
    assert all(r["status"] == "ok" for r in records.values()) and not outcome.failed
    inline = execute_run(runs[2], registry, CPU)
    assert [e["forward_nfe"] for e in records["hbnode"]["epochs"]] == [e["forward_nfe"] for e in inline["epochs"]]
    assert records["hbnode"]["epochs"][-1]["loss"] == pytest.approx(inline["epochs"][-1]["loss"], rel=1e-4)
    assert records["hbnode"]["environment"]["torch_threads"] == 1  # 2 cores split between 2 workers


@pytest.mark.slow
def test_ray_on_a_local_cluster(tmp_path, registry):
    pytest.importorskip("ray")
    runs = [make_spec(model=m, epochs=1, solver=RK4) for m in ("node", "hbnode")]
    outcome = run_suite(runs, registry, tmp_path, "cpu", executor="ray", workers=2)
    assert sorted(r["model"] for r in outcome.records) == ["hbnode", "node"]
    assert all(r["status"] == "ok" and r["epochs"][0]["forward_nfe"] == 8 for r in outcome.records)
    assert len(list(read_records(tmp_path))) == 2


def test_nfe_cap_and_time_limit_end_a_run_as_failed(tmp_path, registry):
    capped = make_spec(model="node", epochs=2, solver={"rtol": 1e-6, "atol": 1e-6, "max_nfe": 10})
    slow = make_spec(model="hbnode", epochs=500, time_limit_s=0.5)
    fine = make_spec(model="anode", epochs=1, solver=RK4)
    outcome = run_suite([capped, slow, fine], registry, tmp_path, CPU)
    records = {r["model"]: r for r in outcome.records}
    assert records["node"]["failure_kind"] == "nfe_cap"
    assert "needed more than 10 evaluations" in records["node"]["error"]
    assert records["hbnode"]["failure_kind"] == "time_limit"
    assert len(records["hbnode"]["epochs"]) < 500
    assert records["anode"]["status"] == "ok"


def test_any_exception_is_recorded_with_its_reason(tmp_path, registry):
    bad = make_spec(model="hbnode", epochs=1, widths={"n": 2, "h": -1})  # torch raises inside
    outcome = run_suite([bad, make_spec(model="node", epochs=1, solver=RK4)], registry, tmp_path, CPU)
    failed, ok = outcome.records
    assert (failed["status"], failed["failure_kind"]) == ("failed", "error")
    assert failed["error"].startswith("RuntimeError: ") and "negative dimension" in failed["error"]
    assert ok["status"] == "ok"


SUITE = """
name: killme
runs:
  - task: point_cloud
    models: [node, hbnode, ghbnode]
    epochs: 60
    lr: 0.02
    solver: {method: rk4, options: {step_size: 0.25}}
"""


@pytest.mark.slow
def test_kill_9_mid_suite_then_rerun_leaves_one_ok_record_per_run(tmp_path):
    """SIGKILL once a run is recorded and another trains (both read with the driver stopped,
    so the moment cannot slip on a busy machine); the rerun finishes every run once."""
    suite, out = tmp_path / "suite.yaml", tmp_path / "out"
    suite.write_text(SUITE)
    command = [sys.executable, "-m", "harness.cli", "run", str(suite), "--out", str(out), "--quiet"]
    process = subprocess.Popen(command, start_new_session=True)
    checkpoints = out / "checkpoints"
    killed = False
    while not killed:
        assert process.poll() is None, "the suite finished before it could be killed"
        time.sleep(0.05)
        with frozen(process):
            written = {r["key"] for r in read_records(out)}
            if written and part_way(checkpoints, 60, written):
                os.killpg(process.pid, signal.SIGKILL)
                killed = True
    process.wait()
    written = len(results_path(out).read_text().splitlines())
    assert 0 < written < 3

    assert subprocess.run(command, timeout=1800).returncode == 0  # a hang guard
    lines = results_path(out).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 3 and len({r["key"] for r in records}) == 3
    assert all(r["status"] == "ok" for r in records)
    assert any(r.get("resumed_from_epoch", 0) > 0 for r in records)
    assert all(len(r["epochs"]) == 60 for r in records)
    assert not any(checkpoints.glob("*.pt"))
