"""Results for analysis: harness.load_results (a DataFrame, one row per run and epoch, the
configuration flattened) and summary.tex beside summary.md."""
from __future__ import annotations

import math

import pytest

import harness
from harness.reports.frame import load_results
from harness.reports.page import write_page
from harness.running.store import ResultsError
from tests.result_records import curve_run, record, write_records


def test_one_row_per_run_and_epoch_with_the_configuration_in_columns(tmp_path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    write_records(first, [curve_run("point_cloud", "hbnode", 0, {"loss": [0.9, 0.5, 0.2],
                                                                 "forward_nfe": [20, 26, 32]}),
                          record("point_cloud", "node", 1, [], status="failed")])
    write_records(second, [curve_run("point_cloud", "node", 2, {"loss": [0.7]}, tol=1e-5)])
    frame = harness.load_results(first, second)
    assert harness.load_results is load_results
    assert len(frame) == 3 + 1 + 1
    hbnode = frame[frame["model"] == "hbnode"]
    assert list(hbnode["epoch"]) == [1, 2, 3]
    assert list(hbnode["loss"]) == [0.9, 0.5, 0.2]
    assert list(hbnode["forward_nfe"]) == [20, 26, 32]
    assert set(hbnode["config.solver.method"]) == {"dopri5"}
    assert set(hbnode["config.task_options.data_seed"]) == {0}
    assert sorted(frame["config.solver.rtol"].unique()) == [1e-5, 1e-3]
    failed = frame[frame["status"] == "failed"]
    assert len(failed) == 1 and math.isnan(failed["epoch"].iloc[0])
    assert failed["error"].iloc[0] == "SolverFailure: too many steps"
    assert {"suite", "task", "seed", "key", "wall_time_s", "train_time_s"} <= set(frame.columns)
    with pytest.raises(ResultsError, match="no such directory or file"):
        load_results(tmp_path / "nowhere")


def test_summary_tex_beside_summary_md(tmp_path) -> None:
    write_records(tmp_path, [curve_run("point_cloud", model, seed,
                                       {"test_accuracy": [0.5 + 0.1 * seed], "loss": [0.3]})
                             for model in ("node", "hbnode") for seed in (0, 1)])
    written = write_page([tmp_path], formats=["png"])
    tex = (written.summary.parent / "summary.tex").read_text()
    assert written.summary.name == "summary.md"
    assert tex.count("\\begin{table}") == 1 and "\\toprule" in tex and "\\bottomrule" in tex
    assert "\\caption{point\\_cloud, suite test: 2 seeds: 0, 1; profile: paper.}" in tex
    row = next(line for line in tex.splitlines() if line.strip().startswith("hbnode"))
    cells = [cell.strip() for cell in row.rstrip("\\ ").split("&")]
    # mean ± std, then the 95 % CI of the mean (t with 1 degree of freedom: ±12.7 · 0.05)
    assert cells[:4] == ["hbnode", "2", "0", "0.55 \\ensuremath{\\pm} 0.071 [-0.0853, 1.19]"]
    assert "±" not in tex
