"""The progress display: the ETA per run and for the suite (a fake clock), runs finished earlier
counted up front and left out of the counter, resumed runs saying where they resume."""
from __future__ import annotations

import io
from pathlib import Path

import torch

import harness.running.eta as eta_module
from harness.running.checkpoints import Checkpoints
from harness.running.ensembles import ensemble_id
from harness.running.plan import DONE, HISTORY, NEW, REFERENCE, RESUME, duration, plan_suite
from harness.running.reference import ReferenceTimes, epoch_shape
from harness.running.progress import Progress
from tests.conftest import make_spec
from tests.result_records import epoch, record, write_records


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def finished(spec, wall_time_s: float, status: str = "ok") -> dict:
    """A record of ``spec`` that took ``wall_time_s`` over its epochs."""
    run = record(spec.task, spec.model, spec.seed, [epoch(i + 1) for i in range(spec.epochs)],
                 status=status)
    run.update(key=spec.key, config=spec.config(), wall_time_s=wall_time_s)
    return run


def display(plan, clock) -> tuple[Progress, io.StringIO]:
    stream = io.StringIO()
    return Progress(plan, stream=stream, clock=clock, live=False), stream


def last_line(stream: io.StringIO) -> str:
    return stream.getvalue().splitlines()[-1]


def test_the_eta_per_run_and_for_the_suite(tmp_path: Path) -> None:
    a, b = make_spec(model="node", seed=0, epochs=10), make_spec(model="node", seed=1, epochs=10)
    c = make_spec(model="hbnode", seed=0, epochs=10)
    earlier_c = make_spec(model="hbnode", seed=7, epochs=10)  # c's configuration, another seed
    write_records(tmp_path, [finished(earlier_c, 20.0)])  # 2 s per epoch
    clock = FakeClock()
    progress, stream = display(plan_suite([a, b, c], tmp_path), clock)
    progress.begin()
    assert last_line(stream) == (f"3 runs: 0 finished earlier in {tmp_path} (skipped), 3 to run; "
                                 "estimated at least 20s run one at a time, from earlier "
                                 "results (2 runs without any yet)")

    progress.harness_run_started(a)
    assert last_line(stream).startswith("[1/3] point_cloud/node/seed0: starting; 0s elapsed, "
                                        "ETA ?; suite elapsed 0s, ETA ≥ 20s")
    clock.now += 5
    progress.harness_epoch_finished(a, epoch(1))  # 5 s an epoch: 45 s to go
    # the suite: a 45 s, b at a's pace 50 s, c from its earlier run 20 s
    assert progress.run_timing(a) == "5s elapsed, ETA 45s"
    assert progress.suite_timing() == "elapsed 5s, ETA 1m 55s"
    clock.now += 45
    for number in range(2, 11):
        progress.harness_epoch_finished(a, epoch(number))
    progress.harness_run_finished(a, finished(a, 50.0))
    assert last_line(stream) == ("[1/3] point_cloud/node/seed0: ok in 50s, loss 1, NFE fwd 10.0, "
                                 "bwd 12.0; 1 of 3 done, suite elapsed 50s, ETA 1m 10s")

    progress.harness_run_started(b)  # now b's configuration has a finished run: 5 s an epoch
    clock.now += 20
    assert progress.run_timing(b) == "20s elapsed, ETA 30s"
    assert progress.suite_timing() == "elapsed 1m 10s, ETA 50s"


def test_the_suite_eta_divides_by_the_runs_seen_running_at_once(tmp_path: Path) -> None:
    a, b = make_spec(model="node", seed=0, epochs=4), make_spec(model="node", seed=1, epochs=4)
    clock = FakeClock()
    progress, _ = display(plan_suite([a, b], tmp_path), clock)
    progress.harness_run_started(a)
    progress.harness_run_started(b)
    clock.now += 10
    progress.harness_epoch_finished(a, epoch(1))
    progress.harness_epoch_finished(b, epoch(1))
    assert progress.suite_timing() == "elapsed 10s, ETA 30s"  # 30 s each, two at once


def test_members_of_an_ensemble_resume_from_its_checkpoint(tmp_path: Path) -> None:
    """With ``ensemble``, the runs to do are grouped as the executor groups them: seeds 1–3
    (seed 0 is done) form one ensemble whose checkpoint holds 2, 0 and 4 epochs of its members
    (the first two failed); a crafted one that does not fit the ensemble resumes nobody."""
    done, *todo = (make_spec(seed=seed, epochs=10) for seed in range(4))
    write_records(tmp_path, [finished(done, 30.0)])
    checkpoints = Checkpoints(tmp_path / "checkpoints")
    identity = ensemble_id(todo)
    failure = {"error": "SolverFailure: x", "failure_kind": "solver"}  # 0 and 1 stopped early
    epochs = [[epoch(1), epoch(2)], [], [epoch(i) for i in range(1, 5)]]
    checkpoints.save(identity, {"model": {"w": torch.zeros(1)}, "optimizer": {}, "elapsed_s": 9.0,
                                "epochs": epochs,
                                "failed": {"0": failure, "1": failure}})
    plan = plan_suite([done, *todo], tmp_path, ensemble="auto")
    assert [(run.state, run.resume_epoch) for run in plan.runs] == [
        (DONE, 0), (RESUME, 2), (NEW, 0), (RESUME, 4)]
    assert all(run.state == NEW for run in plan_suite(todo, tmp_path).runs)  # one by one
    checkpoints.save(identity, {"model": {}, "optimizer": {}, "elapsed_s": 1.0,
                                "epochs": [epoch(1), epoch(2)]})
    assert all(run.state == NEW for run in plan_suite(todo, tmp_path, ensemble=3).runs)


def test_finished_runs_are_counted_up_front_and_resumed_ones_say_where(tmp_path: Path) -> None:
    done, resumed, new = (make_spec(seed=seed, epochs=10) for seed in (0, 1, 2))
    write_records(tmp_path, [finished(done, 30.0),
                             finished(make_spec(seed=5, epochs=10), 1.0, status="failed")])
    Checkpoints(tmp_path / "checkpoints").save(resumed.key, {
        "model": {"w": torch.zeros(1)}, "optimizer": {}, "epochs": [epoch(i) for i in (1, 2, 3)],
        "elapsed_s": 9.0})
    plan = plan_suite([done, resumed, new], tmp_path)
    assert [(run.state, run.resume_epoch) for run in plan.runs] == [(DONE, 0), (RESUME, 3),
                                                                    (NEW, 0)]
    assert plan_suite([done], tmp_path, force=True).runs[0].state == NEW
    clock = FakeClock()
    progress, stream = display(plan, clock)
    progress.begin()
    # 3 s an epoch from the two earlier runs of this configuration (30 s and 1 s over 10 epochs:
    # median 1.55 s), 7 epochs left for the resumed one, 10 for the new one
    assert last_line(stream) == (f"3 runs: 1 finished earlier in {tmp_path} (skipped), 2 to run "
                                 "(1 resume from a checkpoint); estimated 26s run one at a time, "
                                 "from earlier results")
    progress.harness_run_started(resumed)
    assert last_line(stream).startswith("[1/2] point_cloud/hbnode/seed1: resuming at epoch 4/10; "
                                        "0s elapsed, ETA 11s")
    progress.harness_run_started(new)
    assert last_line(stream).startswith("[2/2] point_cloud/hbnode/seed2: starting")


def test_plain_lines_every_tenth_epoch_and_live_bars_on_a_terminal(tmp_path: Path) -> None:
    spec = make_spec(epochs=20)
    plain, stream = display(plan_suite([spec], tmp_path), FakeClock())
    plain.harness_run_started(spec)
    for number in range(1, 21):
        plain.harness_epoch_finished(spec, epoch(number))
    epochs = [line.split(": epoch ")[1].split()[0] for line in stream.getvalue().splitlines()
              if ": epoch " in line]
    assert epochs == [f"{n}/20" for n in range(2, 21, 2)]
    assert "\r" not in stream.getvalue() and "\033" not in stream.getvalue()

    terminal = io.StringIO()
    live = Progress(plan_suite([spec], tmp_path), stream=terminal, clock=FakeClock(), live=True)
    live.begin()
    live.harness_run_started(spec)
    live.harness_epoch_finished(spec, epoch(1))
    live.harness_run_finished(spec, finished(spec, 2.0))
    live.close()
    text = terminal.getvalue()
    assert "\033[" in text and "suite" in text
    assert "[1/1] point_cloud/hbnode/seed0: ok in 2s, loss 1, NFE fwd 10.0, bwd 12.0; 1 of 1 done" \
        in text


def test_durations_read_as_two_units_at_most() -> None:
    assert [duration(s) for s in (0, 45.4, 65, 3600, 3 * 3600 + 20 * 60 + 5, 2 * 86400 + 4 * 3600)] \
        == ["0s", "45s", "1m 5s", "1h", "3h 20m", "2d 4h"]


def test_a_first_plan_estimates_from_the_reference_and_says_so(tmp_path: Path) -> None:
    """With no earlier results, the reference timing of a run's epoch shape estimates it (its
    schedule — seed, epochs, lr — does not matter); earlier results of the configuration come
    first; a run of another shape has none. The display names each source."""
    a, b = make_spec(model="node", seed=0, epochs=10), make_spec(model="node", seed=1, epochs=10)
    other = make_spec(model="hbnode", seed=0, epochs=10)
    measured = make_spec(model="node", seed=9, epochs=3, lr=0.5)  # same shape as a and b
    reference = ReferenceTimes("machine X", {epoch_shape(measured.config()): 1.5})
    plan = plan_suite([a, b, other], tmp_path, reference=reference)
    assert [plan.estimate(run) for run in plan.runs] == [(15.0, REFERENCE), (15.0, REFERENCE),
                                                         None]
    progress, stream = display(plan, FakeClock())
    progress.begin()
    assert last_line(stream) == (
        f"3 runs: 0 finished earlier in {tmp_path} (skipped), 3 to run; estimated at least 30s "
        "run one at a time, from the shipped reference timings (machine X) (1 runs without any "
        "yet)")
    write_records(tmp_path, [finished(make_spec(model="node", seed=7, epochs=10), 40.0)])
    plan = plan_suite([a, b, other], tmp_path, reference=reference, workers=2)
    assert plan.estimate(plan.runs[0]) == (40.0, HISTORY)
    assert plan.total_estimate_s() == (40.0, 1)  # 80 s of runs, two at a time
    fresh = plan_suite([a, other], tmp_path / "fresh", reference=reference)
    clock = FakeClock()
    progress, _ = display(fresh, clock)
    progress.harness_run_started(a)  # no epoch timed yet: the reference's 1.5 s an epoch
    assert progress.run_timing(a) == "0s elapsed, ETA 15s"


def test_members_of_an_ensemble_are_not_estimated_from_solo_timings(tmp_path: Path) -> None:
    """An ensemble member's record carries the ensemble's times: it estimates no solo run, and
    no solo timing estimates a member; the plan says the runs go as ensembles."""
    specs = [make_spec(seed=seed, epochs=10) for seed in range(4)]
    member = finished(make_spec(seed=9, epochs=10), 100.0)
    member["ensemble"] = {"id": "e", "size": 4, "index": 0}
    write_records(tmp_path, [member])
    reference = ReferenceTimes("machine X", {epoch_shape(specs[0].config()): 1.0})
    solo = plan_suite(specs, tmp_path, reference=reference)
    assert {plan_source for run in solo.runs for plan_source in [solo.estimate(run)]} == {
        (10.0, REFERENCE)}
    together = plan_suite(specs, tmp_path, ensemble="auto", workers=2, reference=reference)
    assert [together.estimate(run) for run in together.runs] == [None] * 4
    assert together.how() == "as 1 ensemble of 4 runs, 2 at a time"


def test_the_suite_eta_computes_each_runs_configuration_once(tmp_path: Path,
                                                             monkeypatch) -> None:
    """Every progress line asks the ETA of every waiting run; with an ensemble of 100 members
    running that was 100 × 100 configurations turned into text per line, and the driver, busy
    with it, held up the workers whose epochs it had to read (the 100-seed point cloud's
    workers ran at 5 % of a core). Each run's configuration is now made once."""
    specs = [make_spec(model="node", seed=seed, epochs=10) for seed in range(30)]
    made = []
    real = eta_module.configuration
    monkeypatch.setattr(eta_module, "configuration", lambda config: made.append(1) or real(config))
    clock = FakeClock()
    progress, _ = display(plan_suite(specs, tmp_path), clock)
    for spec in specs:
        progress.harness_run_started(spec)
    for number in range(1, 11):
        clock.now += 1
        for spec in specs:
            progress.harness_epoch_finished(spec, epoch(number))
    assert progress.suite_timing() == "elapsed 10s, ETA 0s"
    assert len(made) <= len(specs)
