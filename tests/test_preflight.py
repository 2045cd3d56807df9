"""The pre-flight data check and the plan: a suite missing data fails before anything trains,
naming every missing file and the runs that need it; --skip-unavailable runs the rest and
records the others; --dry-run shows the plan and writes nothing; the built-in tasks' checks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from torchvision import datasets

from harness.cli import main
from harness.running.store import read_records
from tests.image_files import random_idx_split, write_cifar, write_idx
from tests.sequence_files import (trust_written, write_plane_vibration, write_silverbox,
                                  write_walker)

SUITE = """
name: mixed
runs:
  - task: point_cloud
    models: [node]
    epochs: 1
    solver: {tol: 1.0e-3}
  - task: plane_vibration
    models: [node, hbnode]
    epochs: 1
  - task: silverbox_init
    model: node
    epochs: 1
"""


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    path = tmp_path / "mixed.yaml"
    path.write_text(SUITE)
    return path


def test_missing_data_stops_the_suite_before_any_training(suite, tmp_path, capsys) -> None:
    empty, out = tmp_path / "data", tmp_path / "out"
    empty.mkdir()
    code = main(["run", str(suite), "--out", str(out), "--data-root", str(empty), "--quiet"])
    error = capsys.readouterr().err
    assert code == 2
    assert "data missing for 3 runs; nothing was trained" in error
    assert (f"{empty / 'plane_vibration' / 'pv.csv'}  (needed by 2 runs: "
            "plane_vibration/node/seed0, plane_vibration/hbnode/seed0)") in error
    assert f"{empty / 'silverbox' / 'sb.csv'}  (needed by 1 run: silverbox_init/node/seed0)" in error
    assert "--skip-unavailable" in error
    assert not (out / "results.jsonl").exists()


def test_skip_unavailable_runs_the_rest_and_records_the_others(suite, tmp_path, capsys,
                                                               monkeypatch) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    write_silverbox(data, 100)
    trust_written(monkeypatch, data)
    code = main(["run", str(suite), "--out", str(out), "--data-root", str(data),
                 "--skip-unavailable"])
    captured = capsys.readouterr()
    assert code == 0  # the runs left out do not fail the command: they were asked to be
    assert "leaving out 2 runs for missing data" in captured.err
    records = {(r["task"], r["model"]): r for r in read_records(out)}
    assert records["point_cloud", "node"]["status"] == "ok"
    assert records["silverbox_init", "node"]["status"] == "ok"
    for model in ("node", "hbnode"):
        left_out = records["plane_vibration", model]
        assert (left_out["status"], left_out["failure_kind"]) == ("failed", "data_missing")
        assert left_out["epochs"] == []
        assert str(data / "plane_vibration" / "pv.csv") in left_out["error"]
        assert "skipped before training (--skip-unavailable)" in left_out["error"]
    assert "2 left out for missing data" in captured.out
    # once the data is there, a rerun runs what was left out (and not what finished)
    write_plane_vibration(data, 50)
    main(["run", str(suite), "--out", str(out), "--data-root", str(data), "--dry-run"])
    plan = capsys.readouterr().out
    line = next(row for row in plan.splitlines() if row.startswith("plane_vibration  hbnode"))
    assert line.split()[2:7] == ["1", "0", "0", "1", "ok"]
    line = next(row for row in plan.splitlines() if row.startswith("point_cloud"))
    assert line.split()[2:7] == ["1", "1", "0", "0", "—"]


def test_the_dry_run_shows_the_plan_and_writes_nothing(suite, tmp_path, capsys) -> None:
    empty, out = tmp_path / "data", tmp_path / "out"
    empty.mkdir()
    code = main(["run", str(suite), "--out", str(out), "--data-root", str(empty), "--dry-run"])
    text = capsys.readouterr().out
    assert code == 0
    assert text.startswith("4 runs; results directory")
    rows = {tuple(line.split()[:2]): line.split()[2:] for line in text.splitlines()
            if line.startswith(("point_cloud", "plane_vibration", "silverbox_init"))}
    assert rows["point_cloud", "node"][:5] == ["1", "0", "0", "1", "ok"]
    assert rows["plane_vibration", "hbnode"][:7] == ["1", "0", "0", "1", "MISSING", "for", "1"]
    assert f"{empty / 'plane_vibration' / 'pv.csv'}  (needed by 2 runs" in text
    # the runnable point-cloud run: estimated from the shipped reference if it holds its shape
    assert ("time: no estimate for the 1 runs to run" in text
            or "1 runs estimated from the reference timings shipped with the harness" in text)
    assert not out.exists()


def test_the_built_in_tasks_name_their_missing_files(tmp_path, registry) -> None:
    tasks = registry.tasks
    options = {name: dict(task.options) for name, task in tasks.items()}
    root = str(tmp_path)
    assert tasks["point_cloud"].check_data(options["point_cloud"], root) == []
    assert tasks["walker2d"].check_data(options["walker2d"], root) == [
        str(tmp_path / "walker" / "rollout_*.npy")]
    write_walker(tmp_path, [70])
    assert tasks["walker2d"].check_data(options["walker2d"], root) == []
    mnist = tasks["mnist"].check_data(options["mnist"], root)
    assert mnist == [str(tmp_path / "MNIST" / "raw" / name)
                     for name, _ in datasets.MNIST.resources]
    assert tasks["mnist"].check_data({**options["mnist"], "download": True}, root) == []
    rng = np.random.default_rng(0)
    raw = tmp_path / "MNIST" / "raw"
    write_idx(raw, "train", *random_idx_split(4, rng))
    assert tasks["mnist"].check_data(options["mnist"], root) == [
        str(raw / "t10k-images-idx3-ubyte.gz"), str(raw / "t10k-labels-idx1-ubyte.gz")]
    write_idx(raw, "test", *random_idx_split(4, rng))
    assert tasks["mnist"].check_data(options["mnist"], root) == []
    assert len(tasks["cifar10"].check_data(options["cifar10"], root)) == 7
    write_cifar(tmp_path, 2, 2, rng)
    assert tasks["cifar10"].check_data(options["cifar10"], root) == []
