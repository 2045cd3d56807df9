"""The `harness` command, end to end in-process: run, list, report, and bad input."""
from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from harness.cli import main
from harness.running.store import read_records

TINY = """
name: tiny
runs:
  - task: point_cloud
    models: [node, hbnode]
    epochs: 2
    solver: {tol: 1.0e-3}
"""


@pytest.fixture
def suite(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.mark.slow  # end to end: a suite run, then its report
def test_run_then_report(suite, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", str(suite), "--out", str(out), "--device", "cpu"]) == 0
    records = list(read_records(out))
    assert [(r["model"], r["status"]) for r in records] == [("node", "ok"), ("hbnode", "ok")]
    progress = capsys.readouterr().err
    assert "[2/2] point_cloud/hbnode/seed0: ok in" in progress
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 0
    assert "0 runs done (0 failed), 2 skipped" in capsys.readouterr().out
    assert main(["report", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| hbnode" in table and "568" in table
    assert (out / "report" / "summary.csv").is_file()
    header = (out / "report" / "index.md").read_text()
    assert 'from the results directory ".." (relative to this page). Every number' in header


def test_failed_runs_set_the_exit_code(tmp_path, capsys):
    path = tmp_path / "failing.yaml"
    path.write_text(TINY + "    overrides:\n      node: {solver: {options: {max_num_steps: 1}}}\n")
    out = str(tmp_path / "out")
    assert main(["run", str(path), "--out", out, "--quiet"]) == 1
    assert "failed: point_cloud/node/seed0: SolverFailure: max_num_steps exceeded" in capsys.readouterr().out
    assert main(["run", str(path), "--out", out, "--quiet", "--allow-failures"]) == 0


def test_bad_suite_is_a_clear_error_not_a_traceback(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(TINY.replace("hbnode", "hbnod"))
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert f"{path}: runs[0].models[1]: unknown model 'hbnod'" in error
    assert "did you mean 'hbnode'?" in error and "Traceback" not in error
    assert not (tmp_path / "out").exists()


def test_report_of_a_missing_directory(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "nowhere: no such directory" in capsys.readouterr().err


def test_list_shows_plugins_and_their_package(capsys):
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    for name in ("node", "anode", "sonode", "hbnode", "ghbnode", "point_cloud"):
        assert f" {name} " in listing
    assert "h, m" in listing and "harness" in listing
    assert " inline " in listing and " local " in listing
    (slurm,) = [line for line in listing.splitlines() if line.startswith("executor  slurm ")]
    assert "partition, account" in slurm  # its settings, execution.slurm's keys


@pytest.mark.parametrize("out", ["/", "/tmp/..", "a-file"])
def test_run_refuses_the_root_and_files_as_results_directory(suite, tmp_path, capsys, out,
                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("not a directory")
    assert main(["run", str(suite), "--out", out, "--device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"harness: {out}") and "valid: a directory" in error
    assert not (tmp_path / "a-file" / "results.jsonl").exists() and not Path("/results.jsonl").exists()


def test_version_and_help_text(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"harness {importlib.metadata.version('harness')}"
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "Exit codes" in text and "``" not in text


SUITES = Path(__file__).parents[1] / "suites"


def test_a_first_dry_run_estimates_from_the_shipped_reference(tmp_path, capsys):
    """In a fresh results folder, the smoke suite's runs are estimated from the reference
    timings installed with the harness, and the output names the machine they were taken on."""
    assert main(["run", str(SUITES / "smoke.yaml"), "--out", str(tmp_path / "out"),
                 "--dry-run"]) == 0
    text = capsys.readouterr().out
    rows = [line.split() for line in text.splitlines() if line.startswith("point_cloud")]
    assert len(rows) == 5 and all(row[-1] != "?" for row in rows)
    assert "time: " in text and "for the 5 runs to run, one at a time" in text
    assert "5 runs estimated from the reference timings shipped with the harness, measured on " \
        in text


def test_a_dry_run_says_how_runs_execute_and_which_tasks_need_no_data(tmp_path, capsys):
    """Ensembles on two workers are not "one at a time"; tasks that read no file are "ok", not
    "unchecked"."""
    main(["run", str(SUITES / "point-cloud-100.yaml"), "--out", str(tmp_path / "a"), "--dry-run"])
    text = capsys.readouterr().out
    assert "as 5 ensembles of 100 runs, 2 at a time" in text
    assert "one at a time" not in text
    for suite in ("graph-stiff.yaml", "stiff.yaml"):
        main(["run", str(SUITES / suite), "--out", str(tmp_path / suite), "--dry-run"])
        rows = [line.split() for line in capsys.readouterr().out.splitlines()
                if line.startswith(("graph_sbm", "diffusion1d"))]
        assert rows and all(row[6] == "ok" for row in rows)
