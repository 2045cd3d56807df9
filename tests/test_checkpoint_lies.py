"""Checkpoints that unpickle safely but lie, and checkpoints that cannot be saved.

A real run's checkpoint is altered one lie at a time (no random-number state or a bad one, a
time of "x" or −1e9, more epochs than the run has, a field that is no number, an ensemble member
ahead of the others, a failure of no member or of kind "ok"): each is set aside with a warning
saying what is wrong, and the run trains from scratch, recorded ok with all its epochs. A save
refused by the storage (a real ``ulimit -f``, a refusal after the first epoch) ends the command
with exit 3, records nothing failed, and says whether a checkpoint is kept."""
from __future__ import annotations

import errno
import math
import os
import resource
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from harness.cli import EXIT_WRITE_FAILED, main
from harness.record import record_problem
from harness.running import checkpoints as checkpoints_module
from harness.running import store
from harness.running.checkpoints import Checkpoints
from harness.running.ensembles import ensemble_id, execute_ensemble
from harness.running.plan import NEW, plan_suite
from harness.running.runner import execute_run
from harness.running.store import read_records, results_path
from tests.conftest import CPU, make_spec

TINY = {"inner": 10, "outer": 20}
EPOCHS = 2


def _solo():
    return make_spec(model="node", epochs=EPOCHS, task_options=TINY,
                     solver={"method": "rk4", "options": {"step_size": 0.5}})


def _members():
    return [make_spec(model="node", seed=seed, epochs=EPOCHS, task_options=TINY,
                      solver={"backend": "fast"}) for seed in (0, 1)]


def _first_epoch_only(state: dict[str, Any]) -> None:
    """As if the run (each member of the ensemble) had been stopped after epoch 1."""
    members = state["epochs"] if "failed" in state else [state["epochs"]]
    for epochs in members:
        del epochs[1:]


def _plant(path: Path, lie: Callable[[dict[str, Any]], None]) -> None:
    state = torch.load(path, weights_only=True)
    lie(state)
    torch.save(state, path)


def _trained_from_scratch(record: dict[str, Any]) -> None:
    assert record["status"] == "ok", record.get("error")
    assert "resumed_from_epoch" not in record
    assert [e["epoch"] for e in record["epochs"]] == list(range(1, EPOCHS + 1))
    assert 0 <= record["wall_time_s"] < math.inf
    assert record_problem(record) is None  # the harness's own reader keeps it


SOLO_LIES = {
    "no rng": (lambda s: s.pop("rng"), "no 'rng'"),
    "torch rng of another size": (
        lambda s: s["rng"].update(torch=torch.zeros(3, dtype=torch.uint8)),
        "'rng': does not restore"),
    "python rng torn": (lambda s: s["rng"].update(python=[3, [1, 2, 3], None]),
                        "'rng': does not restore"),
    "elapsed x": (lambda s: s.update(elapsed_s="x"), "'elapsed_s' is 'x'"),
    "elapsed negative": (lambda s: s.update(elapsed_s=-1e9), "'elapsed_s' is -1000000000.0"),
    "elapsed nan": (lambda s: s.update(elapsed_s=float("nan")), "'elapsed_s' is nan"),
    "more epochs than the run": (
        lambda s: s.update(epochs=[{**s["epochs"][0], "epoch": n} for n in range(1, 21)]),
        "20 epochs, but the run has 2"),
    "a field that is no number": (lambda s: s["epochs"][0].update(forward_nfe="many"),
                                  "epoch 1: 'forward_nfe' is 'many', not a number"),
    "nfe not finite": (lambda s: s["epochs"][0].update(forward_nfe=float("inf")),
                       "'forward_nfe' is inf, not a finite number ≥ 0"),
    "memory negative": (lambda s: s["epochs"][0].update(forward_memory_bytes=-4096),
                        "'forward_memory_bytes' is -4096, not a finite number ≥ 0"),
    "epochs out of order": (lambda s: s["epochs"][0].update(epoch=2), "'epoch' is 2, not 1"),
    "unknown key": (lambda s: s.update(schema=1), "unknown key 'schema'"),
}


@pytest.mark.parametrize("lie", SOLO_LIES)
def test_a_lying_solo_checkpoint_is_set_aside_and_the_run_trains_from_scratch(
        registry, tmp_path, caplog, lie):
    spec, checkpoints = _solo(), Checkpoints(tmp_path)
    honest = execute_run(spec, registry, CPU, checkpoints=checkpoints)  # leaves its checkpoint
    plant, reason = SOLO_LIES[lie]
    _plant(checkpoints.path(spec.key), _first_epoch_only)
    _plant(checkpoints.path(spec.key), plant)
    record = execute_run(spec, registry, CPU, checkpoints=checkpoints)
    _trained_from_scratch(record)
    assert [e["forward_nfe"] for e in record["epochs"]] == [
        e["forward_nfe"] for e in honest["epochs"]]
    assert f"not what {spec.label} saves: " in caplog.text and reason in caplog.text
    assert len(list(tmp_path.glob(f"{spec.key}.pt.*.rejected"))) == 1


def test_the_planner_plans_a_lying_checkpoints_run_afresh_and_leaves_the_file(registry,
                                                                                tmp_path):
    """The planner (``--dry-run``, the progress display) holds no lock: it writes nothing, not
    even the move aside of a checkpoint it will not use; the run, under the lock, does that."""
    spec, checkpoints = _solo(), Checkpoints(tmp_path / "checkpoints")
    execute_run(spec, registry, CPU, checkpoints=checkpoints)
    _plant(checkpoints.path(spec.key), lambda state: state.update(elapsed_s=-1.0))
    planted = checkpoints.path(spec.key).read_bytes()
    assert [run.state for run in plan_suite([spec], tmp_path).runs] == [NEW]
    assert checkpoints.path(spec.key).read_bytes() == planted
    assert not list(checkpoints.directory.glob("*.rejected"))


ENSEMBLE_LIES = {
    "a member ahead of the run": (
        lambda s: s["epochs"][0].extend({**s["epochs"][0][0], "epoch": n} for n in range(2, 10)),
        "member 0: 9 epochs, but the run has 2"),
    "a member behind, not failed": (lambda s: s["epochs"][1].clear(),
                                    "member 1 trained 0 epochs, the ensemble 1"),
    "a failure of no member": (
        lambda s: s.update(failed={"x": {"error": "E: e", "failure_kind": "error"}}),
        "'failed' of member 'x': no member of an ensemble of 2"),
    "a failure of kind ok": (
        lambda s: s.update(failed={"1": {"error": "E: e", "failure_kind": "ok"}}),
        "'failure_kind' is 'ok'; valid: nfe_cap, solver"),
    "one member's epochs only": (lambda s: s["epochs"].pop(),
                                 "'epochs' holds 1 members' epochs, but the ensemble has 2"),
}


@pytest.mark.parametrize("lie", ENSEMBLE_LIES)
def test_a_lying_ensemble_checkpoint_is_set_aside_and_every_member_trains_from_scratch(
        registry, tmp_path, caplog, lie):
    specs, checkpoints = _members(), Checkpoints(tmp_path)
    execute_ensemble(specs, registry, CPU, checkpoints=checkpoints)
    identity = ensemble_id(specs)
    _plant(checkpoints.path(identity), _first_epoch_only)
    plant, reason = ENSEMBLE_LIES[lie]
    _plant(checkpoints.path(identity), plant)
    records = execute_ensemble(specs, registry, CPU, checkpoints=checkpoints)
    for record in records:
        _trained_from_scratch(record)
    assert reason in caplog.text and "and its ensemble saves" in caplog.text
    assert len(list(tmp_path.glob(f"{identity}.pt.*.rejected"))) == 1


def test_an_honest_checkpoint_still_resumes(registry, tmp_path, caplog):
    """The checks refuse only lies: a run and an ensemble cut after epoch 1 resume there."""
    spec, specs, checkpoints = _solo(), _members(), Checkpoints(tmp_path)
    execute_run(spec, registry, CPU, checkpoints=checkpoints)
    execute_ensemble(specs, registry, CPU, checkpoints=checkpoints)
    _plant(checkpoints.path(spec.key), _first_epoch_only)
    _plant(checkpoints.path(ensemble_id(specs)), _first_epoch_only)
    assert execute_run(spec, registry, CPU, checkpoints=checkpoints)["resumed_from_epoch"] == 1
    assert [r["resumed_from_epoch"] for r in
            execute_ensemble(specs, registry, CPU, checkpoints=checkpoints)] == [1, 1]
    assert "not a usable checkpoint" not in caplog.text


def test_a_run_of_zero_epochs_resumed_from_its_checkpoint_records_epoch_0_once(registry,
                                                                              tmp_path):
    """Stopped after its checkpoint and before its record, a study of the untrained model
    (``epochs: 0``) resumes with nothing left to do, alone or in an ensemble."""
    checkpoints = Checkpoints(tmp_path)
    spec, specs = replace(_solo(), epochs=0), [replace(s, epochs=0) for s in _members()]
    for _ in range(2):  # the second time from the checkpoint the first left
        record = execute_run(spec, registry, CPU, checkpoints=checkpoints)
        records = execute_ensemble(specs, registry, CPU, checkpoints=checkpoints)
    for resumed in (record, *records):
        assert [e["epoch"] for e in resumed["epochs"]] == [0]
        assert resumed["resumed_from_epoch"] == 1


# --- saves the storage refuses ---------------------------------------------------------------

def _suite(directory: Path, solver: str = "{method: rk4, options: {step_size: 0.5}}") -> Path:
    """A suite of one tiny two-epoch point-cloud run."""
    path = directory / "suite.yaml"
    path.write_text(f"name: saves\nruns:\n  - {{task: point_cloud, models: [node], epochs: 2, "
                    f"task_options: {{inner: 10, outer: 20}}, solver: {solver}}}\n")
    return path


def test_a_save_refused_after_the_first_epoch_is_a_storage_failure(tmp_path, monkeypatch, capsys):
    suite, out, real, saves = _suite(tmp_path), tmp_path / "out", os.replace, []

    def full_at_second_save(source, target, **descriptors):
        saves.append(target)
        if len(saves) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(source, target, **descriptors)

    monkeypatch.setattr(checkpoints_module.os, "replace", full_at_second_save)
    command = ["run", str(suite), "--out", str(out), "--device", "cpu", "--quiet"]
    assert main(command) == EXIT_WRITE_FAILED
    error = capsys.readouterr().err
    assert "could not save this checkpoint (No space left on device)" in error
    assert "the run is stopped and not recorded, and its checkpoint of the epoch before is kept" \
        in error and "Traceback" not in error
    assert not results_path(out).exists() or read_records(out) == []
    assert not list((out / "checkpoints").glob("*.tmp"))
    monkeypatch.undo()
    assert main(command) == 0
    (record,) = read_records(out)
    assert record["status"] == "ok" and record["resumed_from_epoch"] == 1


@pytest.mark.parametrize("executor", ["inline", "local"])
def test_a_real_file_size_limit_on_checkpoints_ends_with_exit_3_and_records_no_failure(
        tmp_path, executor):
    """``ulimit -f`` smaller than a checkpoint: the first save fails (in a worker process too),
    nothing is recorded failed, the message says no checkpoint exists; a rerun completes."""
    suite, out = _suite(tmp_path), tmp_path / "out"
    command = [sys.executable, "-m", "harness.cli", "run", str(suite), "--out", str(out),
               "--device", "cpu", "--quiet", "--executor", executor, "--workers", "1"]

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))

    limited = subprocess.run(command, preexec_fn=limit, capture_output=True, text=True,
                             timeout=300)
    assert limited.returncode == EXIT_WRITE_FAILED, limited.stderr
    assert "could not save this checkpoint (File too large)" in limited.stderr
    assert "no earlier checkpoint of it exists (a rerun starts it afresh)" in limited.stderr
    assert "Traceback" not in limited.stderr
    assert not results_path(out).exists() or read_records(out) == []
    assert subprocess.run(command, capture_output=True, timeout=300).returncode == 0
    (record,) = read_records(out)
    assert record["status"] == "ok" and "resumed_from_epoch" not in record


def test_a_record_that_cannot_be_written_says_whether_its_checkpoint_is_kept(
        tmp_path, monkeypatch, capsys):
    """A run that failed before its first epoch has no checkpoint: the message must not
    promise one."""
    suite = _suite(tmp_path, "{method: dopri5, max_nfe: 3}")

    def disk_full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.os, "write", disk_full)
    out = tmp_path / "out"
    assert main(["run", str(suite), "--out", str(out), "--device", "cpu", "--quiet"]) == \
        EXIT_WRITE_FAILED
    error = capsys.readouterr().err
    assert "No space left on device" in error and "it has no checkpoint: a rerun runs it again" \
        in error and "checkpoint is kept" not in error
