"""``--force`` and checkpoints: a forced rerun that was interrupted continues from its
checkpoint when the same command runs again, as the plan announces; a checkpoint that only
repeats a finished run's record (its driver killed after storing the record) is dropped, and
the forced run trains afresh, as the plan announces too."""
from __future__ import annotations

import pytest

from harness import hookimpl
from harness.plugins import load_registry
from harness.running.checkpoints import Checkpoints
from harness.running.driver import run_suite
from harness.running.ensembles import ensemble_id
from harness.running.plan import NEW, RESUME, plan_suite
from tests.conftest import CPU, make_spec

RK4 = {"method": "rk4", "options": {"step_size": 0.5}}
FAST = {"backend": "fast", "rtol": 1e-3, "atol": 1e-3}


class CtrlCAfterEpoch:
    """Ctrl-C pressed as a run's epoch ``epoch`` ends (its checkpoint is saved by then)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    @hookimpl
    def harness_epoch_finished(self, run, epoch):
        if epoch["epoch"] == self.epoch:
            raise KeyboardInterrupt


def test_an_interrupted_forced_rerun_resumes_as_the_plan_says(tmp_path):
    registry = load_registry()
    spec = make_spec(model="node", epochs=4, solver=RK4)
    (first,) = run_suite([spec], registry, tmp_path, CPU).records
    registry.manager.register(CtrlCAfterEpoch(2), name="ctrl-c")
    with pytest.raises(KeyboardInterrupt):
        run_suite([spec], registry, tmp_path, CPU, force=True)
    registry.manager.unregister(name="ctrl-c")
    saved = Checkpoints(tmp_path / "checkpoints").read(spec.key, [spec])
    assert [e["epoch"] for e in saved["epochs"]] == [1, 2]

    (planned,) = plan_suite([spec], tmp_path, force=True).runs
    assert (planned.state, planned.resume_epoch) == (RESUME, 2)
    (again,) = run_suite([spec], registry, tmp_path, CPU, force=True).records
    assert again["status"] == "ok" and again["resumed_from_epoch"] == 2
    assert again["epochs"][:2] == saved["epochs"] != first["epochs"][:2]  # this attempt's
    assert [e["epoch"] for e in again["epochs"]] == [1, 2, 3, 4]


@pytest.mark.parametrize("ensemble", [None, "auto"])
def test_a_finished_runs_leftover_checkpoint_is_dropped_and_the_forced_run_trains_afresh(
        tmp_path, registry, monkeypatch, ensemble):
    """The driver killed between storing the records and dropping the checkpoint (here: it
    drops nothing) leaves a checkpoint holding every recorded epoch. A forced rerun does not
    "resume" from it at the last epoch: it trains every epoch again."""
    runs = [make_spec(model="node", seed=seed, epochs=2, solver=FAST,
                      task_options={"inner": 10, "outer": 20}) for seed in (0, 1)]
    key = ensemble_id(runs) if ensemble else runs[0].key
    with monkeypatch.context() as patched:
        patched.setattr(Checkpoints, "discard", lambda self, key: None)
        first = run_suite(runs, registry, tmp_path, CPU, ensemble=ensemble).records
    checkpoints = Checkpoints(tmp_path / "checkpoints")
    assert checkpoints.path(key).is_file() and all(r["status"] == "ok" for r in first)

    plan = plan_suite(runs, tmp_path, force=True, ensemble=ensemble)
    assert [run.state for run in plan.runs] == [NEW, NEW]
    forced = run_suite(runs, registry, tmp_path, CPU, force=True, ensemble=ensemble).records
    for before, after in zip(first, forced):
        assert after["status"] == "ok" and "resumed_from_epoch" not in after
        assert [e["epoch"] for e in after["epochs"]] == [1, 2]
        assert after["epochs"][0]["train_time_s"] != before["epochs"][0]["train_time_s"]
    assert not checkpoints.path(key).exists()
