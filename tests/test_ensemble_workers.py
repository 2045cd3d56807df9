"""Ensembles as units of work for the worker-pool executors (``local``, ``ray``): each ensemble
trains in one worker process and sends back every member's record; a dead worker, a time limit
and a rerun treat the ensemble's members as they treat solo runs. The misbehaving families and
the task of which one seed fails reach worker processes through ``HARNESS_PLUGINS``."""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from harness import Work, hookimpl
from harness.plugins import load_registry
from harness.running.checkpoints import Checkpoints
from harness.running.deadline import grace
from harness.running.driver import run_suite
from harness.running.ensembles import ensemble_id
from harness.running.executors import Executor, RayCluster
from harness.running.runner import RunConfigError
from harness.suites.runspec import RunSpec
from tests.conftest import CPU, make_spec

pytestmark = pytest.mark.slow  # ensembles in worker processes and Ray

PLUGINS = "tests.fault_plugins"
FAST = {"backend": "fast", "rtol": 1e-3, "atol": 1e-3}
TINY = {"inner": 10, "outer": 20}


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """One local Ray cluster (two CPUs) for this module's Ray tests: the executor uses a
    cluster already running (and leaves it running), so they share one start-up and its warm
    Ray workers, which see the fault families (``HARNESS_PLUGINS`` when the cluster starts).
    The executor's own start and shutdown of a cluster: tests/test_execution.py."""
    ray = pytest.importorskip("ray")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HARNESS_PLUGINS", PLUGINS)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def fault_registry(monkeypatch):
    """The installed plugins plus the fault families and tasks, here and in worker processes."""
    monkeypatch.setenv("HARNESS_PLUGINS", PLUGINS)
    return load_registry()


def _seeds(model: str, seeds=(0, 1, 2), **settings) -> list[RunSpec]:
    """Runs that differ only in seed, on the fast backend (which ensembles solve with)."""
    settings = {"task_options": TINY, "epochs": 2, **settings}
    return [make_spec(model=model, seed=seed, solver=FAST, **settings) for seed in seeds]


def _nfe(record) -> list[tuple]:
    return [(e["forward_nfe"], e["backward_nfe"], e.get("eval_nfe")) for e in record["epochs"]]


TWO_FAMILIES = _seeds("node") + _seeds("hbnode")


@pytest.fixture(scope="module")
def inline_records(registry, tmp_path_factory) -> list:
    """The records of two families' ensembles, made by the inline executor: the reference for
    both pool executors, made once."""
    return run_suite(TWO_FAMILIES, registry, tmp_path_factory.mktemp("inline"), CPU,
                     ensemble="auto").records


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_each_ensemble_is_one_unit_of_work_with_the_members_records_of_inline(
        tmp_path, registry, inline_records, executor, request):
    """Two families' ensembles on two workers: every member's record as the inline executor
    makes it (status, its place in its ensemble, NFE in every epoch, losses)."""
    if executor == "ray":
        request.getfixturevalue("ray_cluster")
    pooled = run_suite(TWO_FAMILIES, registry, tmp_path / "pool", "cpu", executor=executor,
                       workers=2, ensemble="auto").records
    alone = {record["key"]: record for record in inline_records}
    assert sorted(alone) == sorted(record["key"] for record in pooled)
    for record in pooled:
        reference = alone[record["key"]]
        assert record["status"] == reference["status"] == "ok"
        assert record["ensemble"] == reference["ensemble"] and record["ensemble"]["size"] == 3
        assert _nfe(record) == _nfe(reference) and len(record["epochs"]) == 2
        assert record["epochs"][-1]["loss"] == pytest.approx(reference["epochs"][-1]["loss"],
                                                             rel=1e-4)
    if executor == "local":
        assert {r["environment"]["torch_threads"] for r in pooled} == {1}  # 2 workers, 2 cores
    assert not list((tmp_path / "pool" / "checkpoints").glob("*.pt"))


def test_a_worker_killed_mid_ensemble_fails_its_members_and_a_rerun_resumes_them(
        tmp_path, fault_registry):
    """Ensemble A (seed 2 failing at its first iteration) waits until ensemble B trains in the
    other worker, and its worker is killed after its epoch 2. A's members fail with the reason
    (seed 2 with its own, from the ensemble's checkpoint, which stays); B finishes. The rerun
    skips B's members and resumes A from its checkpoint."""
    pid_a, pid_b = tmp_path / "a.pid", tmp_path / "b.pid"
    victims = _seeds("crawler", task="one_seed_fails", epochs=5,
                     task_options={**TINY, "fail_at": 1},
                     model_options={"pid_file": str(pid_a), "wait_for": str(pid_b)})
    others = _seeds("crawler", epochs=3, model_options={"pid_file": str(pid_b)})

    class KillAfterEpoch2:
        killed = False

        @hookimpl
        def harness_epoch_finished(self, run, epoch):
            if run.key == victims[0].key and epoch["epoch"] == 2 and not self.killed:
                os.kill(int(pid_a.read_text()), signal.SIGKILL)
                self.killed = True

    fault_registry.manager.register(KillAfterEpoch2(), name="kill-after-epoch-2")
    out = tmp_path / "out"
    outcome = run_suite(victims + others, fault_registry, out, "cpu", executor="local",
                        workers=2, ensemble="auto")
    assert pid_a.read_text() != pid_b.read_text()  # A and B trained at once, in two workers
    records = {record["key"]: record for record in outcome.records}
    assert len(records) == 6
    for spec in others:
        assert records[spec.key]["status"] == "ok" and len(records[spec.key]["epochs"]) == 3
    lost = [records[spec.key] for spec in victims]
    identity = lost[0]["ensemble"]["id"]
    kept = Checkpoints(out / "checkpoints").read(identity, victims)
    assert kept is not None, "the dead ensemble's checkpoint was dropped"
    for index, record in enumerate(lost):
        assert record["ensemble"] == {"id": identity, "size": 3, "index": index}
        assert record["status"] == "failed" and record["epochs"] == kept["epochs"][index]
    for record in lost[:2]:
        assert record["failure_kind"] == "worker_died" and "SIGKILL" in record["error"]
        assert len(record["epochs"]) >= 2
    assert lost[2]["failure_kind"] == "non_finite" and lost[2]["epochs"] == []

    rerun = run_suite(victims + others, fault_registry, out, "cpu", executor="local",
                      workers=2, ensemble="auto")
    assert rerun.skipped == 3
    resumed = {record["key"]: record for record in rerun.records}
    assert sorted(resumed) == sorted(spec.key for spec in victims)
    for spec, before in zip(victims[:2], lost[:2]):
        again = resumed[spec.key]
        assert again["status"] == "ok" and again["resumed_from_epoch"] == len(before["epochs"])
        assert [e["epoch"] for e in again["epochs"]] == [1, 2, 3, 4, 5]
        assert again["epochs"][:len(before["epochs"])] == before["epochs"]
    assert resumed[victims[2].key]["failure_kind"] == "non_finite"
    assert not list((out / "checkpoints").glob("*.pt"))


def test_an_ensembles_time_limit_is_the_units_and_its_killed_worker_fails_every_member(
        tmp_path, fault_registry):
    """An ensemble stuck where no alarm reaches (epoch 2, or epoch 1 on a busy machine) is
    killed at its time limit plus the grace, counted from the ensemble's start (its members'
    recorded time), within one more grace: every member fails ``time_limit`` with the epochs
    its checkpoint held; the other ensemble finishes; no checkpoint stays."""
    limit = 2
    stuck = _seeds("stuck", seeds=(0, 1), epochs=3, time_limit_s=limit)
    others = _seeds("node", seeds=(0, 1))
    outcome = run_suite(stuck + others, fault_registry, tmp_path, "cpu", executor="local",
                        workers=2, ensemble="auto")
    records = {record["key"]: record for record in outcome.records}
    for spec in stuck:
        record = records[spec.key]
        assert record["failure_kind"] == "time_limit", record["error"]
        assert "its worker was killed" in record["error"] and record["ensemble"]["size"] == 2
        assert [e["epoch"] for e in record["epochs"]] in ([], [1])
        assert limit + grace(limit) <= record["wall_time_s"] < limit + 2 * grace(limit)
    assert all(records[spec.key]["status"] == "ok" for spec in others)
    assert not list((tmp_path / "checkpoints").glob("*.pt"))


def test_an_ensemble_out_of_memory_in_a_worker_is_halved_there(tmp_path, fault_registry):
    """In a worker process too, an ensemble that runs out of memory before its first epoch
    ends is retried as two halves: four seeds fitting two members' rows end ``ok`` in two
    ensembles of two, with the records of the inline executor."""
    runs = _seeds("out_of_memory_above", seeds=(0, 1, 2, 3), model_options={"rows": 60})
    pooled = run_suite(runs, fault_registry, tmp_path / "pool", "cpu", executor="local",
                       workers=1, ensemble="auto").records
    inline = run_suite(runs, fault_registry, tmp_path / "inline", CPU, ensemble="auto").records
    assert [(r["status"], r["ensemble"]["size"], r["ensemble"]["index"]) for r in pooled] == [
        ("ok", 2, 0), ("ok", 2, 1), ("ok", 2, 0), ("ok", 2, 1)]
    assert [_nfe(r) for r in pooled] == [_nfe(r) for r in inline]
    assert not list((tmp_path / "pool" / "checkpoints").glob("*.pt"))


class _OneAtATime(Executor):
    """An executor plugin that knows nothing of ensembles."""

    name = "one_at_a_time"

    def run(self, work: Work) -> Iterator:
        for unit in work.units:
            yield from work.execute(unit, "cpu")


class _ProvidesOneAtATime:
    @hookimpl
    def harness_executors(self):
        return [_OneAtATime]


def test_an_executor_that_takes_no_ensembles_is_refused_naming_those_that_do(tmp_path):
    registry = load_registry([("one-at-a-time", _ProvidesOneAtATime())])
    with pytest.raises(RunConfigError, match="the one_at_a_time executor runs one run per unit "
                                             "of work; ensembles run with executor: inline, "
                                             "local, ray"):
        run_suite(_seeds("node"), registry, tmp_path, CPU, executor="one_at_a_time",
                  ensemble="auto")


def _kill_each_attempt(pid_file: Path, checkpoint: Path, attempts: int) -> threading.Thread:
    """A thread that, ``attempts`` times, waits until an attempt of the unit has checkpointed
    the ensemble and written its worker's pid, then SIGKILLs that worker and its parent (the
    Ray worker running the task): a lost node, as Ray sees it."""
    def kill() -> None:
        deadline = time.monotonic() + 1800  # a hang guard
        killed: set[int] = set()
        while len(killed) < attempts and time.monotonic() < deadline:
            time.sleep(0.05)
            if not (pid_file.exists() and checkpoint.is_file()):
                continue
            child = int(pid_file.read_text())
            if child in killed:  # rewritten by the dying worker between unlink and kill
                pid_file.unlink(missing_ok=True)
                continue
            parent = int(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[1])
            for pid in (parent, child):
                os.kill(pid, signal.SIGKILL)
            killed.add(child)
            pid_file.unlink(missing_ok=True)  # the next attempt writes its own
    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("attempts, outcome", [(1, "retried"), (2, "lost")])
def test_a_ray_task_lost_mid_ensemble_is_retried_from_its_checkpoint_or_fails_its_members(
        tmp_path, ray_cluster, fault_registry, monkeypatch, attempts, outcome):
    """The Ray worker running an ensemble (and the ensemble's own worker process) killed once it
    has checkpointed: Ray runs the task again, which resumes the ensemble from its checkpoint,
    and every member finishes. Killed at every attempt (its retries spent: one here), each
    member fails ``worker_died`` with the epochs of the ensemble's checkpoint, which stays; a
    rerun resumes them all."""
    monkeypatch.setattr(RayCluster, "retries", 1)
    pid = tmp_path / "pid"
    runs = _seeds("crawler", epochs=6, model_options={"pid_file": str(pid)})
    out = tmp_path / "out"
    checkpoints = Checkpoints(out / "checkpoints")
    identity = ensemble_id(runs)
    killer = _kill_each_attempt(pid, checkpoints.path(identity), attempts)
    records = run_suite(runs, fault_registry, out, "cpu", executor="ray", workers=1,
                        ensemble="auto").records
    killer.join(timeout=5)
    assert [r["ensemble"] for r in records] == [{"id": identity, "size": 3, "index": i}
                                                for i in range(3)]
    if outcome == "retried":
        for record in records:
            assert record["status"] == "ok" and record["resumed_from_epoch"] >= 1
            assert [e["epoch"] for e in record["epochs"]] == [1, 2, 3, 4, 5, 6]
        return
    kept = checkpoints.read(identity, runs)
    assert kept is not None, "the lost ensemble's checkpoint was dropped"
    for index, record in enumerate(records):
        assert record["failure_kind"] == "worker_died" and "Ray task was lost" in record["error"]
        assert record["epochs"] == kept["epochs"][index] and len(record["epochs"]) >= 1
    rerun = run_suite(runs, fault_registry, out, "cpu", executor="ray", workers=1,
                      ensemble="auto").records
    for record, before in zip(rerun, records):
        assert record["status"] == "ok" and record["resumed_from_epoch"] == len(before["epochs"])
        assert [e["epoch"] for e in record["epochs"]] == [1, 2, 3, 4, 5, 6]
