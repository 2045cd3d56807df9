"""The result record has one definition (harness.record.RunRecord): what the constructors build,
ok or failed or lost, is exactly what that type declares, and what the store reads back is
checked against it."""
from __future__ import annotations

import typing

from harness.record import RunRecord, record_problem
from harness.running.records import lost_record
from harness.running.runner import execute_run, solver_backend
from harness.running.store import ResultStore, read_records
from harness.running.failures import WorkerDied
from tests.conftest import CPU, make_spec

DECLARED = set(typing.get_type_hints(RunRecord))


def test_an_ok_and_a_failed_run_build_only_declared_fields(registry):
    ok = execute_run(make_spec(epochs=1), registry, CPU)
    failed = execute_run(make_spec(epochs=1, solver={"options": {"max_num_steps": 1}}), registry,
                         CPU)
    assert (ok["status"], failed["status"]) == ("ok", "failed")
    for record in (ok, failed):
        assert set(record) <= DECLARED, set(record) - DECLARED
        assert record_problem(record) is None
    # a failed run says why, in the declared fields
    assert failed["failure_kind"] == "solver" and failed["traceback"]
    assert {"wall_time_s", "finished_at", "params", "widths"} <= set(ok)


def test_a_lost_run_record_is_a_whole_record(registry):
    spec = make_spec(epochs=1)
    record = lost_record(spec, registry, CPU, solver_backend(spec, registry),
                         WorkerDied("killed by SIGKILL"), [{"epoch": 1, "loss": 0.5}], 2.5)
    assert set(record) <= DECLARED
    assert record_problem(record) is None
    assert (record["status"], record["failure_kind"], record["wall_time_s"]) == (
        "failed", "worker_died", 2.5)
    assert record["key"] == spec.key and record["epochs"] == [{"epoch": 1, "loss": 0.5}]


def test_the_store_refuses_a_field_of_the_wrong_declared_type(registry, tmp_path):
    record = execute_run(make_spec(epochs=1), registry, CPU)
    with ResultStore(tmp_path) as store:
        store.append(record)
        store.append({**record, "key": "other", "higher_is_better": "yes"})
        store.append({**record, "key": "third", "status": "skipped"})
    assert [r["key"] for r in read_records(tmp_path)] == [record["key"]]
    assert "'higher_is_better' is 'yes', not a boolean" == record_problem(
        {**record, "higher_is_better": "yes"})
    assert "one of ok, failed" in record_problem({**record, "status": "skipped"})
