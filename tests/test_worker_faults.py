"""Faults in and around worker processes: a killed worker, a killed driver, right-hand sides
that never return. The misbehaving families (tests/fault_plugins.py) reach worker processes
through ``HARNESS_PLUGINS``."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import hookimpl
from harness.plugins import load_registry
from harness.running.checkpoints import Checkpoints
from harness.running.deadline import grace
from harness.running.driver import run_suite
from harness.running.runner import execute_run
from harness.running.store import read_records
from harness_plugins.tasks.point_cloud import PointCloud
from tests.conftest import CPU, make_spec

PLUGINS = "tests.fault_plugins"
ROOT = Path(__file__).resolve().parent.parent
RK4 = {"method": "rk4", "options": {"step_size": 0.5}}


@pytest.fixture
def fault_registry(monkeypatch):
    """The installed plugins plus the fault families, here and in worker processes."""
    monkeypatch.setenv("HARNESS_PLUGINS", PLUGINS)
    return load_registry()


def harness_run(suite: Path, out: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", "run", str(suite), "--out", str(out),
            "--device", "cpu", "--quiet", *options]


def fault_environment() -> dict[str, str]:
    return {**os.environ, "HARNESS_PLUGINS": PLUGINS}


def test_harness_plugins_registers_modules_and_reports_broken_ones(monkeypatch):
    monkeypatch.setenv("HARNESS_PLUGINS", f" {PLUGINS}, tests.no_such_module ,")
    registry = load_registry(entry_points_group=None)
    assert {"sleeper", "stuck", "crawler"} <= set(registry.families)
    assert registry.package_of("model", "sleeper") == PLUGINS
    (failure,) = registry.failures
    assert failure.plugin == "tests.no_such_module"
    assert "import failed" in failure.reason and "HARNESS_PLUGINS" in failure.reason


class Hung(Exception):
    pass


OUTER_S = 600
"""Someone else's timer: long enough for a busy machine, so only a run that no time limit
stopped meets it."""


@pytest.fixture
def outer_timer():
    """Someone else's SIGALRM timer, which also ends a run no time limit stopped."""
    def outer(signum, frame):
        raise Hung("the run was not stopped at its time limit")

    previous = signal.signal(signal.SIGALRM, outer)
    signal.setitimer(signal.ITIMER_REAL, OUTER_S)
    yield outer
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def test_the_alarm_stops_a_hung_run_inline_and_restores_the_outer_timer(fault_registry,
                                                                         outer_timer):
    """The sleeper hangs in epoch 2 (on a busy machine the limit may come in epoch 1 already):
    only the alarm ends it, else the outer timer would (an error, not ``time_limit``)."""
    spec = make_spec(model="sleeper", epochs=3, solver=RK4, time_limit_s=1.5)
    record = execute_run(spec, fault_registry, CPU, lambda *a, **k: None)
    assert record["failure_kind"] == "time_limit", record["error"]
    assert record["wall_time_s"] >= 1.5
    assert [e["epoch"] for e in record["epochs"]] in ([], [1])
    assert signal.getsignal(signal.SIGALRM) is outer_timer
    assert 0 < signal.getitimer(signal.ITIMER_REAL)[0] < OUTER_S  # the outer timer runs on


def test_the_alarm_stops_a_hung_adjoint_solve(fault_registry, outer_timer):
    """The first 8 evaluations are the forward solve; the 9th is the adjoint's."""
    solver = {**RK4, "adjoint": True}
    plain = execute_run(make_spec(model="node", epochs=1, solver=solver), fault_registry, CPU,
                        lambda *a, **k: None)
    assert plain["epochs"][0]["forward_nfe"] == 8 and plain["epochs"][0]["backward_nfe"] > 0
    spec = make_spec(model="adjoint_sleeper", epochs=2, solver=solver, time_limit_s=1)
    record = execute_run(spec, fault_registry, CPU, lambda *a, **k: None)
    assert record["failure_kind"] == "time_limit", record["error"]  # not the outer timer
    assert record["wall_time_s"] >= 1 and record["epochs"] == []


@pytest.mark.slow
def test_a_killed_worker_fails_only_its_run_and_a_rerun_resumes_it(tmp_path, fault_registry):
    pid_file = tmp_path / "victim.pid"
    victim = make_spec(model="crawler", epochs=8, solver=RK4,
                       model_options={"delay": 0.01, "pid_file": str(pid_file)})
    others = [make_spec(model=m, epochs=3, solver=RK4) for m in ("node", "hbnode", "anode")]

    class KillAtEpoch2:
        killed = False

        @hookimpl
        def harness_epoch_finished(self, run, epoch):
            if run.key == victim.key and epoch["epoch"] == 2 and not self.killed:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
                self.killed = True

    fault_registry.manager.register(KillAtEpoch2(), name="kill-at-epoch-2")
    outcome = run_suite([victim, *others], fault_registry, tmp_path / "out", "cpu",
                        executor="local", workers=2)
    records = {r["model"]: r for r in outcome.records}
    assert sorted(records) == ["anode", "crawler", "hbnode", "node"]
    assert all(records[m]["status"] == "ok" and len(records[m]["epochs"]) == 3
               for m in ("node", "hbnode", "anode"))
    died = records["crawler"]
    assert (died["status"], died["failure_kind"]) == ("failed", "worker_died")
    assert "SIGKILL" in died["error"] and died["environment"]["device"] == "cpu"
    kept = Checkpoints(tmp_path / "out" / "checkpoints").epochs(victim)
    assert len(kept) >= 2 and died["epochs"] == kept

    rerun = run_suite([victim, *others], fault_registry, tmp_path / "out", "cpu",
                      executor="local", workers=2)
    (resumed,) = rerun.records
    assert resumed["status"] == "ok" and resumed["resumed_from_epoch"] == len(kept)
    assert len(resumed["epochs"]) == 8 and rerun.skipped == 3


def children(pid: int) -> set[int]:
    """The processes whose parent is ``pid``."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    """Running (a zombie is dead: its parent, maybe init, has not reaped it yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


CRAWLERS = """
name: crawlers
runs:
  - task: point_cloud
    model: crawler
    seeds: [0, 1, 2]
    epochs: 400
    model_options: {delay: 0.01}
    solver: {method: rk4, options: {step_size: 0.5}}
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_exit_when_the_driver_is_killed(tmp_path):
    suite, out = tmp_path / "suite.yaml", tmp_path / "out"
    suite.write_text(CRAWLERS)
    driver = subprocess.Popen(harness_run(suite, out, "--executor", "local", "--workers", "2"),
                              cwd=ROOT, env=fault_environment(), start_new_session=True)
    try:
        while len(list((out / "checkpoints").glob("*.pt"))) < 2:  # both workers mid-run
            assert driver.poll() is None, "the suite ended before the driver could be killed"
            time.sleep(0.05)
        workers = children(driver.pid)
        assert len(workers) >= 2
        driver.kill()
        driver.wait()
        deadline = time.monotonic() + 120  # a hang guard: the kernel kills them at once
        while any(map(alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in workers if alive(pid)], "workers outlived their driver"
    finally:
        with contextlib.suppress(ProcessLookupError):  # whatever of the test is left
            os.killpg(driver.pid, signal.SIGKILL)


HANGS = """
name: hangs
runs:
  - task: point_cloud
    models: {hanging}
    epochs: 3
    time_limit_s: 3
    solver: {{method: rk4, options: {{step_size: 0.5}}}}
  - task: point_cloud
    model: node
    epochs: 2
    solver: {{method: rk4, options: {{step_size: 0.5}}}}
"""


@pytest.mark.slow
@pytest.mark.parametrize("executor, hanging", [
    ("inline", ["sleeper"]),
    ("local", ["sleeper", "stuck"]),  # stuck: no alarm stops it, the driver kills its worker
])
def test_a_right_hand_side_that_never_returns_ends_at_the_time_limit(tmp_path, executor,
                                                                      hanging):
    """Each hanging run ends at its own time limit, counted from its start (its record's
    time): the sleeper by the alarm inside its process, before the driver's deadline (limit
    plus grace; else the driver would have killed it); the stuck one by the driver killing its
    worker at that deadline, and no later than one grace after it. The machine's load moves
    neither (the command as a whole takes what it takes: a hang guard bounds it)."""
    suite, out = tmp_path / "suite.yaml", tmp_path / "out"
    suite.write_text(HANGS.format(hanging=hanging))
    finished = subprocess.run(harness_run(suite, out, "--executor", executor, "--workers", "2"),
                              cwd=ROOT, env=fault_environment(), capture_output=True, text=True,
                              timeout=1800)
    assert finished.returncode == 1, finished.stderr
    records = {r["model"]: r for r in read_records(out)}
    assert sorted(records) == sorted([*hanging, "node"])
    limit = 3
    for model in hanging:
        record = records[model]
        assert record["failure_kind"] == "time_limit", record["error"]
        assert [e["epoch"] for e in record["epochs"]] in ([], [1])  # [] if the limit came first
        assert record["wall_time_s"] >= limit
    if "sleeper" in records:
        assert "killed" not in records["sleeper"]["error"]
    if "stuck" in records:
        assert "its worker was killed" in records["stuck"]["error"]
        assert limit + grace(limit) <= records["stuck"]["wall_time_s"] < limit + 2 * grace(limit)
    assert records["node"]["status"] == "ok" and len(records["node"]["epochs"]) == 2


@pytest.mark.slow
def test_workers_that_cannot_start_end_the_command_with_one_line(tmp_path):
    """A plugin that kills every worker process while it loads: exit 2, no traceback."""
    suite = tmp_path / "suite.yaml"
    suite.write_text("runs:\n  - {task: point_cloud, model: node, epochs: 1}\n")
    environment = {**os.environ, "HARNESS_PLUGINS": "tests.dies_in_workers"}
    ended = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(suite), "--out",
                            str(tmp_path / "out"), "--executor", "local", "--workers", "1",
                            "--quiet"], env=environment, capture_output=True, text=True,
                           timeout=180)
    assert ended.returncode == 2, ended.stderr
    assert "worker processes die while starting (3 in a row" in ended.stderr
    assert "Traceback" not in ended.stderr


class _HangingData(PointCloud):
    """The point cloud whose data never arrives (a network mount that hangs)."""

    name = "hanging_data"

    def data(self, *args, **kwargs):
        time.sleep(3600)


class _ProvidesHangingData:
    @hookimpl
    def harness_tasks(self):
        return [_HangingData]


def test_the_time_limit_covers_a_task_whose_data_hangs(tmp_path, outer_timer):
    registry = load_registry([("hanging", _ProvidesHangingData())])
    spec = make_spec(task="hanging_data", model="node", epochs=1, time_limit_s=1)
    (record,) = run_suite([spec], registry, tmp_path, CPU).records
    assert record["failure_kind"] == "time_limit", record["error"]  # not the outer timer
    assert record["wall_time_s"] >= 1
