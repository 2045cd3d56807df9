"""The record store under faults: torn tails, short and failing writes, bad lines through every
command, a second driver, crafted checkpoints, readers that agree on which record stands."""
from __future__ import annotations

import errno
import json
import os
import pickle
import resource
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from harness.record import SCHEMA, record_problem
from harness.cli import EXIT_WRITE_FAILED, Terminated, _interruptible, main
from harness.gates.budgets import Budget, check
from harness.reports.tables import summarize
from harness.running import held_signals, store
from harness.running.checkpoints import Checkpoints
from harness.running.store import (ResultStore, StoreBusy, StoreWriteError, finished_keys, load_results,
                           read_records, results_path, standing)
from tests.conftest import make_spec
from tests.result_records import epoch, record, write_records

SUITE = """
name: store
runs:
  - task: point_cloud
    models: [node, hbnode]
    epochs: 2
    solver: {method: rk4, options: {step_size: 0.5}}
"""


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE)
    return path


def run(suite: Path, out: Path, *extra: str) -> int:
    return main(["run", str(suite), "--out", str(out), "--device", "cpu", "--quiet", *extra])


def lines(out: Path) -> list[str]:
    return results_path(out).read_text().splitlines()


# --- torn tails and failing writes ----------------------------------------------------------


def test_a_torn_tail_is_moved_aside_and_the_rerun_writes_whole_records(suite, tmp_path, caplog):
    out = tmp_path / "out"
    assert run(suite, out) == 0
    whole = results_path(out).read_bytes()
    first, second = whole.splitlines(keepends=True)
    results_path(out).write_bytes(first + second[:57])  # a crash in the middle of line 2
    assert run(suite, out) == 0
    records = [json.loads(line) for line in lines(out)]  # every line parses
    assert [r["model"] for r in records] == ["node", "hbnode"]
    torn = list(out.glob("results.jsonl.torn-*"))
    assert len(torn) == 1 and torn[0].read_bytes() == second[:57]
    assert "its last line was cut off (57 bytes" in caplog.text


def test_a_whole_last_record_missing_only_its_newline_is_kept_not_retrained(suite, tmp_path,
                                                                            capsys, caplog):
    out = tmp_path / "out"
    assert run(suite, out) == 0
    whole = results_path(out).read_bytes()
    results_path(out).write_bytes(whole[:-1])  # e.g. an editor that drops the final newline
    assert [r["model"] for r in read_records(out)] == ["node", "hbnode"]
    capsys.readouterr()
    assert run(suite, out) == 0
    assert "0 runs done (0 failed), 2 skipped as already finished" in capsys.readouterr().out
    assert results_path(out).read_bytes() == whole  # the newline put back, nothing moved aside
    assert not list(out.glob("results.jsonl.torn-*")) and "cut off" not in caplog.text


def test_readers_skip_a_torn_last_line_with_a_warning(tmp_path, caplog):
    write_records(tmp_path, [record("point_cloud", "node", 0, [epoch(1)])])
    with open(results_path(tmp_path), "a") as handle:
        handle.write('{"key": "half')
    assert [r["model"] for r in read_records(tmp_path)] == ["node"]
    assert "results.jsonl:2: skipping the last line: it was cut off" in caplog.text


def test_a_short_write_is_continued(tmp_path, monkeypatch):
    real = os.write

    def half(fd, data):
        return real(fd, bytes(data[: max(1, len(data) // 2)]))

    monkeypatch.setattr(store.os, "write", half)
    write_records(tmp_path, [record("point_cloud", "node", 0, [epoch(1)])])
    assert [r["model"] for r in read_records(tmp_path)] == ["node"]


def test_a_signal_taken_by_another_thread_lands_after_the_record_is_whole(tmp_path,
                                                                          monkeypatch):
    """SIGTERM handed by the kernel to another thread (as torch's worker threads take one the
    main thread blocks) while a record is half written: Python runs the handler in the main
    thread all the same, so the record must be finished before it does."""
    gone = threading.Event()

    def take_sigterm() -> None:  # whatever mask this thread was born with
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        gone.wait()

    other = threading.Thread(target=take_sigterm, daemon=True)
    other.start()
    woken_r, woken_w = os.pipe()
    os.set_blocking(woken_w, False)
    previous_wakeup = signal.set_wakeup_fd(woken_w)  # the C handler writes here when it runs
    real = os.write

    def half_then_signal(fd, data):
        if len(data) > 1:
            written = real(fd, bytes(data[:len(data) // 2]))
            signal.pthread_kill(other.ident, signal.SIGTERM)
            # the handler has been tripped: Python runs it at its next call
            assert select.select([woken_r], [], [], 60)[0], "the other thread took no signal"
            os.read(woken_r, 1)
            nothing()
            return written
        return real(fd, data)

    monkeypatch.setattr(store.os, "write", half_then_signal)
    try:
        with _interruptible(), pytest.raises(Terminated):
            write_records(tmp_path, [record("point_cloud", "node", 0, [epoch(1)])])
    finally:
        signal.set_wakeup_fd(previous_wakeup)
        gone.set()
        os.close(woken_r)
        os.close(woken_w)
    assert [r["model"] for r in read_records(tmp_path)] == ["node"]
    assert results_path(tmp_path).read_bytes().endswith(b"\n")


def nothing() -> None:
    """A Python call: where the interpreter runs a signal handler that is due."""


class Stop(Exception):
    """What the test's SIGINT handler raises."""


def test_a_signal_while_the_handlers_are_put_back_is_not_lost(tmp_path, monkeypatch):
    """SIGINT lands as the append puts its handlers back, after its own and before SIGTERM's,
    and its handler raises, cutting that short: the mask is as it was, and a SIGTERM after it
    still reaches its own handler (not the append's, noting it in a list nobody reads)."""
    caught, fired, real = [], [], signal.signal

    def stop(signum, frame):
        raise Stop

    def own(signum, frame):
        caught.append(signum)

    def putting_back(signum, handler):
        if handler is own and not fired:  # SIGINT's own handler is back, SIGTERM's not yet
            fired.append(signum)
            signal.raise_signal(signal.SIGINT)  # its handler runs here and raises
        return real(signum, handler)

    previous = {signal.SIGINT: real(signal.SIGINT, stop), signal.SIGTERM: real(signal.SIGTERM, own)}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    try:
        monkeypatch.setattr(held_signals.signal, "signal", putting_back)
        with pytest.raises(Stop):
            write_records(tmp_path, [record("point_cloud", "node", 0, [epoch(1)])])
        monkeypatch.undo()
        assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == mask
        signal.raise_signal(signal.SIGTERM)
        assert caught == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGINT) is stop and signal.getsignal(signal.SIGTERM) is own
    finally:
        for signum, handler in previous.items():
            real(signum, handler)
    assert [r["model"] for r in read_records(tmp_path)] == ["node"]


def test_an_interrupt_in_a_checkpoint_save_is_not_swallowed_by_the_pickling(tmp_path,
                                                                           monkeypatch):
    """Ctrl-C whose handler Python runs inside library code that swallows every exception, as
    copyreg's ``_slotnames`` (``try: … except: pass``) can while torch.save pickles a tensor
    (a signal another thread took runs there): the save holds it, so it lands after, with
    the checkpoint whole."""
    real_save = torch.save

    def swallowing_save(obj, f):
        try:
            signal.raise_signal(signal.SIGINT)  # the handler runs here, inside the library
        except BaseException:  # copyreg's bare ``except: pass``
            pass
        real_save(obj, f)

    monkeypatch.setattr(torch, "save", swallowing_save)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # pytest may ignore it
    try:
        with pytest.raises(KeyboardInterrupt):
            Checkpoints(tmp_path / "checkpoints").save("unit", {"epochs": [epoch(1)]})
    finally:
        signal.signal(signal.SIGINT, previous)
    saved = torch.load(tmp_path / "checkpoints" / "unit.pt", weights_only=True)
    assert saved["epochs"] == [epoch(1)]


def test_a_failing_write_leaves_the_file_as_it_was_and_says_why(tmp_path, monkeypatch):
    write_records(tmp_path, [record("point_cloud", "node", 0, [epoch(1)])])
    before = results_path(tmp_path).read_bytes()
    real, calls = os.write, []

    def disk_full_halfway(fd, data):
        calls.append(len(data))
        if len(calls) == 1:
            return real(fd, bytes(data[:10]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.os, "write", disk_full_halfway)
    with ResultStore(tmp_path) as results, pytest.raises(StoreWriteError,
                                                         match="No space left on device"):
        results.append(record("point_cloud", "hbnode", 0, [epoch(1)]))
    assert results_path(tmp_path).read_bytes() == before  # the 10 bytes were cut back


def test_a_failed_write_ends_the_command_with_its_own_code_and_keeps_the_checkpoint(
        suite, tmp_path, monkeypatch, capsys):
    def disk_full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.os, "write", disk_full)
    out = tmp_path / "out"
    assert run(suite, out) == EXIT_WRITE_FAILED
    error = capsys.readouterr().err
    assert "No space left on device" in error and "checkpoint is kept" in error
    assert "Traceback" not in error
    assert len(list((out / "checkpoints").glob("*.pt"))) == 1  # the first run's, both epochs
    monkeypatch.undo()
    assert run(suite, out) == 0
    records = read_records(out)
    assert [r["model"] for r in records] == ["node", "hbnode"]
    assert records[0]["resumed_from_epoch"] == 2  # nothing trained twice


def test_a_real_file_size_limit_fails_cleanly_and_a_rerun_completes(suite, tmp_path):
    """``ulimit -f``: the kernel refuses the write (EFBIG, a short write first)."""
    out = tmp_path / "out"
    filler = record("point_cloud", "node", 99, [epoch(1)], suite="filler")
    write_records(out, [{**filler, "key": f"filler{i}"} for i in range(400)])
    size = results_path(out).stat().st_size
    command = [sys.executable, "-m", "harness.cli", "run", str(suite), "--out", str(out),
               "--device", "cpu", "--quiet"]

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 200, size + 200))

    limited = subprocess.run(command, preexec_fn=limit, capture_output=True, text=True,
                             timeout=300)
    assert limited.returncode == EXIT_WRITE_FAILED, limited.stderr
    assert "File too large" in limited.stderr and "Traceback" not in limited.stderr
    assert results_path(out).stat().st_size == size
    assert subprocess.run(command, capture_output=True, timeout=300).returncode == 0
    assert sorted(r["model"] for r in read_records(out) if r["suite"] == "store") == [
        "hbnode", "node"]


# --- bad lines --------------------------------------------------------------------------------

BAD_LINES = ["[1]", "null", "42", '{"foo": 1}', '"text"', "{not json",
             '{"key": "k", "task": "t", "model": "m", "status": "ok", "seed": 0, '
             '"epochs": [{"forward_nfe": "many"}]}',
             '{"key": "k", "task": "t", "model": "m", "status": "weird", "seed": 0, "epochs": []}']


def test_bad_lines_are_skipped_by_run_report_compare_and_check(suite, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(suite, out) == 0
    good = lines(out)
    crashed = {key: value for key, value in json.loads(good[0]).items() if key != "metric"}
    crashed.update(key="crashed", model="sonode", status="failed", error="worker died", epochs=[])
    results_path(out).write_text("\n".join([good[0], *BAD_LINES, json.dumps(crashed), good[1]])
                                 + "\n")
    capsys.readouterr()
    assert run(suite, out) == 0  # both runs found finished
    assert "0 runs done (0 failed), 2 skipped" in capsys.readouterr().out
    assert main(["report", str(out), "--no-paper-claims", "--formats", "svg"]) == 0
    assert main(["compare", str(out), str(out)]) == 0
    budgets = tmp_path / "budgets.yaml"
    assert main(["check", str(out), "--budgets", str(budgets), "--update"]) == 0
    assert main(["check", str(out), "--budgets", str(budgets)]) == 0
    error = capsys.readouterr().err
    for number in range(2, 2 + len(BAD_LINES)):
        assert f"results.jsonl:{number}: skipping a line that is not a result record" in error
    assert "Traceback" not in error


def test_record_problems_name_what_is_wrong():
    assert record_problem([1]) == "a JSON array, not a record (an object)"
    assert record_problem({"foo": 1}) == "no 'key'"
    good = record("point_cloud", "node", 0, [epoch(1)])
    assert record_problem(good) is None
    assert "'seed' is True" in record_problem({**good, "seed": True})
    assert "'params' is '1'" in record_problem({**good, "params": "1"})
    assert "written by a newer harness" in record_problem({**good, "schema": 99})
    assert record_problem({**good, "schema": SCHEMA}) is None


# --- which record stands --------------------------------------------------------------------


def test_the_latest_ok_record_stands_else_the_latest_failed():
    ok = record("point_cloud", "node", 0, [epoch(1)])
    failed = record("point_cloud", "node", 0, [], status="failed")
    assert standing([ok, failed]) == [ok]  # a failed --force rerun does not hide the result
    assert standing([failed, ok]) == [ok]  # a retry that passed
    assert standing([failed, {**failed, "error": "later"}])[0]["error"] == "later"
    assert finished_keys([ok, failed]) == {ok["key"]}


def test_run_report_and_check_agree_after_a_failed_rerun(tmp_path):
    ok = record("point_cloud", "node", 0, [epoch(1, forward_nfe=20.0)])
    failed = record("point_cloud", "node", 0, [], status="failed")
    write_records(tmp_path, [failed, ok, failed])
    records = load_results([tmp_path])
    assert finished_keys(records) == {ok["key"]}
    (row,) = summarize(records)
    assert (row["n_ok"], row["n_failed"], row["forward_nfe_mean"]) == (1, 0, 20.0)
    (verdict,) = check([Budget("point_cloud", "node", max={"forward_nfe": 25})], read_records(tmp_path))
    assert verdict.passed, verdict.problem


def test_check_takes_a_results_file_or_its_folder(suite, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(suite, out) == 0
    budgets = tmp_path / "budgets.yaml"
    assert main(["check", str(out), "--budgets", str(budgets), "--update"]) == 0
    assert main(["check", str(results_path(out)), "--budgets", str(budgets)]) == 0
    assert main(["check", str(tmp_path / "nowhere"), "--budgets", str(budgets)]) == 2
    assert "nowhere: no such directory or file" in capsys.readouterr().err


# --- one driver per directory ---------------------------------------------------------------


def test_a_second_driver_is_refused_with_the_holders_pid(suite, tmp_path, capsys):
    out = tmp_path / "out"
    with ResultStore(out):
        assert run(suite, out) == 2
        assert f"another harness run is writing here (pid {os.getpid()})" in capsys.readouterr().err
        with pytest.raises(StoreBusy):
            ResultStore(out).__enter__()
    assert run(suite, out) == 0  # released


def test_a_killed_drivers_lock_does_not_outlive_it(suite, tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\n"
                               "from harness.running.store import ResultStore\n"
                               f"ResultStore({str(out)!r}).__enter__(); print('held', flush=True)\n"
                               "time.sleep(600)"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(StoreBusy, match=f"pid {holder.pid}"):
        ResultStore(out).__enter__()
    holder.kill()
    holder.wait()
    assert run(suite, out) == 0


# --- checkpoints ----------------------------------------------------------------------------


class Payload:
    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return os.system, (f"touch {self.sentinel}",)


def test_a_crafted_checkpoint_does_not_execute(suite, tmp_path, caplog):
    out = tmp_path / "out"
    assert run(suite, out) == 0
    keys = [r["key"] for r in read_records(out)]
    results_path(out).unlink()
    sentinel = tmp_path / "pwned"
    checkpoints = out / "checkpoints"  # left by the first invocation, empty
    torch.save({"epochs": [], "model": Payload(sentinel)}, checkpoints / f"{keys[0]}.pt")
    (checkpoints / f"{keys[1]}.pt").write_bytes(pickle.dumps(Payload(sentinel)))
    assert run(suite, out) == 0
    assert not sentinel.exists()
    assert all(r["status"] == "ok" and "resumed_from_epoch" not in r for r in read_records(out))
    assert len(list(checkpoints.glob("*.pt.*.rejected"))) == 2
    assert "not a usable checkpoint (UnpicklingError" in caplog.text


def test_checkpoints_round_trip_their_random_state_with_weights_only(tmp_path):
    checkpoints, spec = Checkpoints(tmp_path), make_spec()
    torch.manual_seed(3)
    checkpoints.save(spec.key, {"epochs": [epoch(1)], "model": {"w": torch.ones(2)},
                                "optimizer": {}, "elapsed_s": 1.0})
    expected = torch.rand(3)
    torch.manual_seed(4)
    assert checkpoints.load(spec.key, [spec])["epochs"] == [epoch(1)]
    assert torch.equal(torch.rand(3), expected)
    assert checkpoints.epochs(spec) == [epoch(1)]
    assert not list(tmp_path.glob("*.tmp"))


def test_a_rerun_sweeps_checkpoints_of_finished_runs_and_torn_temporaries(suite, tmp_path):
    """A driver killed between storing a record and dropping its checkpoint, or mid-save."""
    out = tmp_path / "out"
    assert run(suite, out) == 0
    checkpoints = Checkpoints(out / "checkpoints")
    key = read_records(out)[0]["key"]
    checkpoints.save(key, {"epochs": []})
    (out / "checkpoints" / f"{key}.123.tmp").write_bytes(b"half a checkpoint")
    assert run(suite, out) == 0
    assert not list((out / "checkpoints").iterdir())


# --- crafted entries in a results folder ----------------------------------------------------


def test_a_symlinked_lock_or_results_file_writes_nothing_through_the_link(suite, tmp_path,
                                                                          capsys):
    victim = tmp_path / "victim"
    for name in (".harness.lock", "results.jsonl"):
        victim.write_text("precious data\n")
        out = tmp_path / f"out-{name}"
        out.mkdir()
        (out / name).symlink_to(victim)
        assert run(suite, out) == 2  # what the folder holds is bad input, not a failed write
        assert victim.read_text() == "precious data\n"
        assert f"{name}: not a regular file (symbolic links" in capsys.readouterr().err


def test_a_fifo_or_a_folder_as_checkpoint_is_set_aside_and_the_run_starts_over(suite, tmp_path):
    out = tmp_path / "out"
    assert run(suite, out) == 0
    keys = [r["key"] for r in read_records(out)]
    results_path(out).unlink()
    checkpoints = out / "checkpoints"
    os.mkfifo(checkpoints / f"{keys[0]}.pt")  # opening it to read would block for ever
    (checkpoints / f"{keys[1]}.pt").mkdir()
    assert run(suite, out) == 0
    assert all(r["status"] == "ok" and "resumed_from_epoch" not in r for r in read_records(out))
    assert len(list(checkpoints.glob("*.rejected"))) == 2


def test_a_checkpoints_entry_that_is_a_file_is_a_clear_error(suite, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "checkpoints").write_text("not a folder")
    assert run(suite, out) == 2
    assert "checkpoints: is not a directory" in capsys.readouterr().err


def test_a_checkpoint_of_another_shape_is_set_aside_and_the_run_starts_over(suite, tmp_path,
                                                                            caplog):
    out = tmp_path / "out"
    assert run(suite, out) == 0
    reference = read_records(out)
    results_path(out).unlink()
    checkpoints = Checkpoints(out / "checkpoints")
    checkpoints.save(reference[0]["key"], {"epochs": [epoch(1)], "elapsed_s": 0.0,
                                           "model": {"w": torch.ones(3)}, "optimizer": {}})
    assert run(suite, out) == 0
    again = read_records(out)
    assert [r["epochs"][-1]["loss"] for r in again] == [r["epochs"][-1]["loss"] for r in reference]
    assert "resumed_from_epoch" not in again[0]
    assert "its model or optimizer state does not fit this run" in caplog.text
