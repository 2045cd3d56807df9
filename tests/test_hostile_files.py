"""A results folder prepared by someone hostile: links planted where the harness writes, a FIFO,
a folder or a device where it reads, gzip bombs and cut-short archives. Nothing is written
through a link, nothing blocks, nothing reads without end; committed records may be gzipped."""
from __future__ import annotations

import gzip
import importlib.util
import os
import resource
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from harness.cli import main
from harness.reports.frame import load_results as load_frame
from harness.running import results_lines
from harness.running.checkpoints import Checkpoints
from harness.running.safe_files import UnsafePathError
from harness.running.store import ResultStore, ResultsError, load_results, read_records
from tests.result_records import epoch, record, write_records

SUITE = """
name: hostile
runs:
  - task: point_cloud
    models: [node, hbnode]
    epochs: 1
    solver: {method: rk4, options: {step_size: 0.5}}
"""
CLAIMS = "claims:\n  - {id: a, claim: b, task: t, checks: [{params: {counts: {node: 1}}}]}\n"


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE)
    (tmp_path / "suite.claims.yaml").write_text(CLAIMS)
    return path


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim.txt"
    path.write_text("precious data\n")
    return path


@pytest.fixture
def watchdog() -> Iterator[None]:
    """Turns a hang (the failure these tests look for) into a failure after a minute."""
    def expired(signum, frame):
        raise TimeoutError("the command blocked")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def memory_cap() -> Iterator[None]:
    """At most 1 GiB more data memory than now: an unbounded read fails instead of taking the
    machine's memory."""
    used = next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").open()
                if line.startswith("VmData:"))
    previous = resource.getrlimit(resource.RLIMIT_DATA)
    resource.setrlimit(resource.RLIMIT_DATA, (used + 2**30, previous[1]))
    yield
    resource.setrlimit(resource.RLIMIT_DATA, previous)


def run(suite: Path, out: Path, *extra: str) -> int:
    return main(["run", str(suite), "--out", str(out), "--device", "cpu", "--quiet", *extra])


def some_records(directory: Path) -> list[dict]:
    runs = [record("point_cloud", model, seed, [epoch(1), epoch(2)])
            for model in ("node", "hbnode") for seed in (0, 1)]
    write_records(directory, runs)
    return runs


# --- writes through planted links -----------------------------------------------------------


def test_a_planted_claims_link_is_replaced_not_written_through(suite, tmp_path, victim):
    out = tmp_path / "out"
    out.mkdir()
    (out / "claims.yaml").symlink_to(victim)
    assert run(suite, out) == 0
    assert victim.read_text() == "precious data\n"
    assert not (out / "claims.yaml").is_symlink()
    assert (out / "claims.yaml").read_text() == CLAIMS


def test_nothing_is_written_before_the_lock_is_held(suite, tmp_path, capsys):
    out = tmp_path / "out"
    with ResultStore(out):  # another driver holds the folder
        assert run(suite, out) == 2
    assert "another harness run is writing here" in capsys.readouterr().err
    assert sorted(path.name for path in out.iterdir()) == [".harness.lock"]


def test_report_outputs_planted_as_links_write_nothing_through_them(tmp_path, victim, capsys):
    results = tmp_path / "results"
    some_records(results)
    report = results / "report"
    (report / "figures" / "point-cloud-test").mkdir(parents=True)
    planted = ["index.html", "index.md", "summary.md", "summary.csv", "summary.tex",
               "figures/point-cloud-test/nfe.png", "figures/point-cloud-test/nfe.svg"]
    for name in planted:
        (report / name).symlink_to(victim)
    assert main(["report", str(results), "--no-paper-claims"]) == 0
    assert victim.read_text() == "precious data\n"
    for name in planted:
        assert not (report / name).is_symlink() and (report / name).stat().st_size > 0, name
    assert "point-cloud-test/nfe.png" in (report / "index.md").read_text()


@pytest.mark.parametrize("link", ["report", "report/figures"])
def test_a_report_folder_planted_as_a_link_is_refused(tmp_path, capsys, link):
    results, elsewhere = tmp_path / "results", tmp_path / "elsewhere"
    some_records(results)
    elsewhere.mkdir()
    (results / link).parent.mkdir(parents=True, exist_ok=True)
    (results / link).symlink_to(elsewhere)
    assert main(["report", str(results), "--no-paper-claims"]) == 2
    assert f"{results / link}: is a symbolic link or not a folder" in capsys.readouterr().err
    assert not list(elsewhere.iterdir())


def test_a_checkpoint_folder_that_is_a_link_is_not_written_into(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "checkpoints").symlink_to(elsewhere)
    with pytest.raises(UnsafePathError, match="is a symbolic link or not a folder"):
        Checkpoints(tmp_path / "checkpoints").save("k", {"epochs": []})
    assert not list(elsewhere.iterdir())


def test_a_checkpoint_planted_as_a_link_is_replaced(tmp_path, victim):
    checkpoints = Checkpoints(tmp_path / "checkpoints")
    (tmp_path / "checkpoints").mkdir()
    checkpoints.path("k").symlink_to(victim)
    checkpoints.save("k", {"epochs": [{"epoch": 1}]})
    assert victim.read_text() == "precious data\n"
    assert not checkpoints.path("k").is_symlink()
    assert torch.load(checkpoints.path("k"), weights_only=True)["epochs"] == [{"epoch": 1}]


def test_check_update_writes_no_budget_through_a_planted_link(tmp_path, victim):
    results, budgets = tmp_path / "results", tmp_path / "budgets.yaml"
    some_records(results)
    (tmp_path / f".budgets.yaml.{os.getpid()}.tmp").symlink_to(victim)  # a guessable temporary
    assert main(["check", str(results), "--budgets", str(budgets), "--update"]) == 0
    assert victim.read_text() == "precious data\n"
    assert not budgets.is_symlink() and "hbnode" in budgets.read_text()


def test_mlflow_makes_no_database_before_the_lock_nor_through_a_planted_link(suite, tmp_path,
                                                                            victim, capsys,
                                                                            monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "out"
    with ResultStore(out):  # another driver holds the folder
        assert run(suite, out, "--track", "mlflow") == 2
    assert not (out / "mlflow.db").exists()
    (out / "mlflow.db").symlink_to(victim)
    assert run(suite, out, "--track", "mlflow") == 0
    assert victim.read_text() == "precious data\n"
    assert f"UnsafePathError('{out / 'mlflow.db'}: not a regular file" in capsys.readouterr().out


# --- reads that would block, fail or never end ----------------------------------------------


@pytest.mark.parametrize("name", ["results.jsonl", "results.jsonl.gz"])
@pytest.mark.parametrize("dry", [True, False])
def test_a_fifo_as_results_file_is_refused_by_run_and_dry_run(suite, tmp_path, capsys,
                                                              watchdog, name, dry):
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / name)
    assert run(suite, out, *(["--dry-run"] if dry else [])) == 2
    assert f"{out / name}: not a regular file" in capsys.readouterr().err
    assert not (out / "claims.yaml").exists()


def test_a_results_file_that_is_a_folder_is_a_clear_error(suite, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "results.jsonl").mkdir(parents=True)
    assert run(suite, out, "--dry-run") == 2
    assert f"{out / 'results.jsonl'}: not a regular file" in capsys.readouterr().err


def test_a_results_file_linked_to_dev_zero_is_refused_unread(suite, tmp_path, capsys,
                                                            memory_cap):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.jsonl").symlink_to("/dev/zero")
    assert run(suite, out, "--dry-run") == 2
    assert "results.jsonl: not a regular file" in capsys.readouterr().err
    for command in (["report", str(out)], ["check", str(out), "--budgets", "b.yaml"]):
        assert main(command) == 2
    assert main(["check", "/dev/zero", "--budgets", "b.yaml"]) == 2
    assert "/dev/zero: no results file here" in capsys.readouterr().err


def test_an_over_long_line_is_skipped_unread(tmp_path, caplog, monkeypatch):
    runs = some_records(tmp_path)
    path = tmp_path / "results.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    limit = max(map(len, lines))
    monkeypatch.setattr(results_lines, "MAX_LINE", limit)
    path.write_bytes(lines[0] + b"x" * (5 * 2**20) + b"\n" + b"".join(lines[1:]))
    assert [r["key"] for r in read_records(tmp_path)] == [r["key"] for r in runs]
    assert f"results.jsonl:2: skipping a line of more than {limit} bytes" in caplog.text


# --- compressed records ---------------------------------------------------------------------


def gzipped(source: Path, target: Path) -> Path:
    """``source/results.jsonl`` compressed as ``target/results.jsonl.gz``."""
    target.mkdir(parents=True, exist_ok=True)
    path = target / "results.jsonl.gz"
    path.write_bytes(gzip.compress((source / "results.jsonl").read_bytes()))
    return path


def test_report_compare_check_and_load_results_read_gzipped_records(tmp_path, capsys):
    plain, packed = tmp_path / "plain", tmp_path / "packed"
    some_records(plain)
    archive = gzipped(plain, packed)
    assert load_results([packed]) == load_results([plain]) == load_results([archive])
    assert load_frame(packed).equals(load_frame(plain))
    assert main(["compare", str(plain), str(archive), "--fail-on-worse"]) == 0
    budgets = tmp_path / "budgets.yaml"
    assert main(["check", str(plain), "--budgets", str(budgets), "--update"]) == 0
    assert main(["check", str(packed), "--budgets", str(budgets)]) == 0
    assert main(["report", str(packed), "--no-paper-claims", "--formats", "png"]) == 0
    assert "4 run records (4 ok, 0 failed)" in (packed / "report" / "index.md").read_text()


def test_a_folder_reads_its_gzipped_records_before_its_plain_ones(tmp_path):
    """Committed records compressed, newer runs appended: the newer ok record stands."""
    old = tmp_path / "old"
    write_records(old, [record("point_cloud", "node", 0, [epoch(1)]),
                        record("point_cloud", "node", 1, [epoch(1)])])
    folder = tmp_path / "both"
    gzipped(old, folder)
    write_records(folder, [record("point_cloud", "node", 0, [epoch(1), epoch(2)])])
    standing = load_results([folder])
    assert [(r["seed"], len(r["epochs"])) for r in standing] == [(0, 2), (1, 1)]


def test_run_skips_the_runs_of_gzipped_records_and_appends_plain_ones(suite, tmp_path, capsys):
    first = tmp_path / "first"
    assert run(suite, first) == 0
    out = tmp_path / "out"
    gzipped(first, out)
    assert run(suite, out) == 0
    assert "0 runs done (0 failed), 2 skipped as already finished" in capsys.readouterr().out
    assert not (out / "results.jsonl").exists()


def test_a_gzip_bomb_is_refused_after_a_bounded_read(tmp_path, capsys):
    member = gzip.compress(b"\0" * 2**20)  # 1 MiB of zeros in about a kilobyte
    (tmp_path / "results.jsonl.gz").write_bytes(member * 300)  # 300 MiB, no newline
    assert main(["report", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "results.jsonl.gz: decompresses to more than 268435456 bytes" in error
    assert "refused as a gzip bomb" in error


def test_a_cut_short_gzip_gives_the_records_before_the_cut_with_a_warning(tmp_path, caplog):
    plain = tmp_path / "plain"
    runs = [record("point_cloud", "node", seed, [epoch(1, loss=1 / (seed + 3) ** 0.5)])
            for seed in range(50)]  # each with its own digits: the archive grows with them
    write_records(plain, runs)
    archive = gzipped(plain, tmp_path / "packed")
    whole = archive.read_bytes()
    archive.write_bytes(whole[:len(whole) * 3 // 4])
    found = read_records(archive)
    assert 0 < len(found) < len(runs)
    assert [r["key"] for r in found] == [r["key"] for r in runs[:len(found)]]
    assert "cannot be decompressed after line" in caplog.text and "cut short" in caplog.text
    archive.write_bytes(b"not gzip at all\n")
    with pytest.raises(ResultsError, match="holds no result records"):
        load_results([archive])


# --- the chaos benchmark counts what it reports ---------------------------------------------


def test_chaos_counts_the_runs_that_resumed_after_a_failure():
    spec = importlib.util.spec_from_file_location(
        "chaos", Path(__file__).parents[1] / "benchmarks" / "chaos.py")
    chaos = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(chaos)
    died = dict(record("point_cloud", "node", 0, []), status="failed")
    resumed = dict(record("point_cloud", "node", 0, [epoch(1), epoch(2)]), resumed_from_epoch=1)
    fresh_died = dict(record("point_cloud", "node", 1, []), status="failed")
    still_failed = dict(record("point_cloud", "node", 2, []), status="failed")
    found = [died, resumed, fresh_died, record("point_cloud", "node", 1, [epoch(1)]),
             still_failed]
    assert chaos.after_failure(found) == {"failed_runs": 3, "ended_ok": 2, "resumed": 1}
