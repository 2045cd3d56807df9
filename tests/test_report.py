"""The report: exact stats from synthetic records, the Markdown tables and the CSV."""
from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import pytest

from harness.reports.tables import REPORT_DIR, render_markdown, summarize, write_summary
from harness.running.store import ResultsError, load_results, read_records, results_path
from tests.result_records import write_records


def _epoch(n: int, fwd: float, bwd: float | None, time_s: float, loss: float,
           test: dict[str, float] | None = None) -> dict[str, Any]:
    epoch = {"epoch": n, "iterations": 4, "loss": loss, "accuracy": 0.0, "forward_nfe": fwd,
             "backward_nfe": bwd, "train_time_s": time_s, "forward_time_s": time_s / 2,
             "backward_time_s": time_s / 2}
    if test is not None:
        epoch.update({f"test_{k}": v for k, v in test.items()}, eval_nfe=fwd, eval_time_s=0.01)
    return epoch


def _record(task: str, model: str, seed: int, epochs: list[dict[str, Any]], *,
            metric: str = "accuracy", params: int = 569, paper_params: int | None = 568,
            error: str | None = None) -> dict[str, Any]:
    return {"key": f"{task}-{model}-{seed}", "suite": "smoke", "task": task, "model": model,
            "seed": seed, "status": "failed" if error else "ok", "error": error,
            "failure_kind": "exception" if error else None, "params": params,
            "paper_params": paper_params, "widths": {"n": 2, "h": 14}, "metric": metric,
            "higher_is_better": metric == "accuracy", "config": {}, "environment": {},
            "epochs": epochs, "wall_time_s": 1.0}


def _hbnode(seed: int) -> dict[str, Any]:
    """Per-run means: forward NFE 10/20/30, backward 40/50/60, time 1/2/3 s; final loss
    0.25/0.5/0.75 and final test accuracy 0.5/0.75/1.0 (earlier epochs differ on purpose)."""
    k = seed + 1
    return _record("point_cloud", "hbnode", seed, [
        _epoch(1, 10 * k - 2, 20 + 10 * k, k - 0.5, 9.0),
        _epoch(2, 10 * k + 2, 40 + 10 * k, k + 0.5, 0.25 * k, {"accuracy": 0.25 + 0.25 * k}),
    ])


def _node(seed: int) -> dict[str, Any]:
    """No adjoint: forward NFE 14 and 18 per run, backward NFE null."""
    return _record("point_cloud", "node", seed, [
        _epoch(1, 14 + 4 * seed, None, 2.0, 0.5, {"accuracy": 0.5}),
    ], params=500, paper_params=500)


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    write_records(tmp_path, [_hbnode(0), _node(0), _hbnode(1), _node(1), _hbnode(2),
                   _record("point_cloud", "hbnode", 3, [], error="RuntimeError: nan loss"),
                   _record("sine", "node", 0, [_epoch(1, 6, None, 0.5, 0.125, {"mse": 0.0625})],
                           metric="mse", params=41, paper_params=None)])
    return tmp_path


def _rows(results_dir: Path) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["task"], r["model"]): r for r in summarize(read_records(results_dir))}


def test_rows_in_first_seen_order(results_dir: Path) -> None:
    rows = summarize(read_records(results_dir))
    assert [(r["task"], r["model"]) for r in rows] == [
        ("point_cloud", "hbnode"), ("point_cloud", "node"), ("sine", "node")]


def test_stats_are_exact(results_dir: Path) -> None:
    hb = _rows(results_dir)["point_cloud", "hbnode"]
    assert (hb["n_ok"], hb["n_failed"]) == (3, 1)
    assert (hb["forward_nfe_mean"], hb["forward_nfe_std"]) == (20.0, 10.0)
    assert (hb["backward_nfe_mean"], hb["backward_nfe_std"]) == (50.0, 10.0)
    assert (hb["epoch_time_s_mean"], hb["epoch_time_s_std"]) == (2.0, 1.0)
    assert (hb["train_loss_mean"], hb["train_loss_std"]) == (0.5, 0.25)
    assert (hb["test_metric_mean"], hb["test_metric_std"]) == (0.75, 0.25)
    assert (hb["params"], hb["paper_params"]) == (569, 568)
    assert hb["errors"] == [(3, "RuntimeError: nan loss")]


def test_no_adjoint_and_single_seed(results_dir: Path) -> None:
    rows = _rows(results_dir)
    node = rows["point_cloud", "node"]
    assert (node["n_ok"], node["n_failed"]) == (2, 0)
    assert node["backward_nfe_mean"] is None and node["backward_nfe_std"] is None
    assert node["forward_nfe_mean"] == 16.0 and node["forward_nfe_std"] == pytest.approx(8 ** 0.5)
    sine = rows["sine", "node"]
    assert sine["metric"] == "mse" and sine["test_metric_mean"] == 0.0625
    assert sine["test_metric_std"] is None and sine["paper_params"] is None


def test_a_retried_run_counts_by_its_last_record() -> None:
    failed = _record("point_cloud", "hbnode", 0, [], error="killed")
    rows = summarize([failed, _hbnode(0)])
    assert (rows[0]["n_ok"], rows[0]["n_failed"], rows[0]["errors"]) == (1, 0, [])


def write_report(results_dir: Path) -> Path:
    """summary.md and summary.csv of one results directory, as ``harness report`` writes them."""
    return write_summary(summarize(load_results([results_dir])), results_dir / REPORT_DIR)


def test_markdown(results_dir: Path) -> None:
    text = write_report(results_dir).read_text(encoding="utf-8")
    assert "## point_cloud" in text and "## sine" in text
    assert "4 seeds: 0, 1, 2, 3" in text and "1 seed: 0" in text
    assert "| test accuracy " in text and "| test mse " in text
    lines = text.splitlines()
    hb = next(line for line in lines if line.startswith("| hbnode"))
    cells = [cell.strip().replace("\\[", "[").replace("\\]", "]")
             for cell in hb.strip("|").split("|")]  # Markdown escapes the brackets
    # 95 % CI: mean ± t(0.975, 2) · std / sqrt(3) = mean ± 2.4841 · std
    assert cells == ["hbnode", "3", "1", "0.75 ± 0.25 [0.129, 1.37]", "0.5 ± 0.25 [-0.121, 1.12]",
                     "20 ± 10 [-4.84, 44.8]", "50 ± 10 [25.2, 74.8]", "2 ± 1 [-0.484, 4.48]",
                     "569", "568"]
    assert text.startswith("Cells: mean ± sample std over the ok seeds, then in brackets the 95 %")
    node = next(line for line in lines if line.startswith("| node") and "| 500 " in line)
    assert [cell.strip() for cell in node.strip("|").split("|")][6] == "—"
    sine = next(line for line in lines if line.startswith("| node") and "0.0625" in line)
    assert [cell.strip() for cell in sine.strip("|").split("|")][3:] == [
        "0.0625", "0.125", "6", "—", "0.5", "41", "—"]
    assert "- point_cloud/hbnode/seed 3: RuntimeError: nan loss" in text
    assert render_markdown(summarize([])) == "\n"


def test_markdown_escapes_record_strings() -> None:
    model, error = "<script>alert(1)</script>|x", "Boom <b>|</b>\n## not a heading"
    text = render_markdown(summarize([
        _record("t|<i>", model, 0, [_epoch(1, 1, 1, 1.0, 1.0, {"accuracy": 1.0})]),
        _record("t|<i>", model, 1, [], error=error)]))
    assert "<script>" not in text and "<b>" not in text and "<i>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;\\|x" in text
    lines = text.splitlines()
    assert lines[2] == "## t\\|&lt;i&gt;" and not any(line.startswith("## not") for line in lines)
    rows = [line for line in lines if line.startswith("|")]
    assert len(rows) == 3  # header, rule, the one row: the model's "|" split no cell
    assert all(len(re.split(r"(?<!\\)\|", row)) == 12 for row in rows)  # 10 cells
    assert ("- t\\|&lt;i&gt;/&lt;script&gt;alert(1)&lt;/script&gt;\\|x/seed 1: Boom "
            "&lt;b&gt;\\|&lt;/b&gt;<br>## not a heading") in lines


def test_csv(results_dir: Path) -> None:
    write_report(results_dir)
    with open(results_dir / "report" / "summary.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["task"], r["model"]) for r in rows] == [
        ("point_cloud", "hbnode"), ("point_cloud", "node"), ("sine", "node")]
    hb = rows[0]
    assert hb["metric"] == "accuracy" and int(hb["n_ok"]) == 3 and int(hb["n_failed"]) == 1
    assert float(hb["test_metric_mean"]) == 0.75 and float(hb["test_metric_std"]) == 0.25
    assert float(hb["forward_nfe_mean"]) == 20.0 and float(hb["forward_nfe_std"]) == 10.0
    assert float(hb["backward_nfe_mean"]) == 50.0 and int(hb["backward_nfe_n"]) == 3
    assert float(hb["forward_nfe_ci_low"]) == pytest.approx(20 - 4.302653 * 10 / 3 ** 0.5)
    assert float(hb["forward_nfe_ci_high"]) == pytest.approx(20 + 4.302653 * 10 / 3 ** 0.5)
    assert rows[2]["forward_nfe_ci_low"] == "" and int(rows[2]["forward_nfe_n"]) == 1
    assert int(hb["params"]) == 569 and int(hb["paper_params"]) == 568
    assert rows[1]["backward_nfe_mean"] == "" and rows[1]["backward_nfe_std"] == ""
    assert rows[2]["metric"] == "mse" and rows[2]["paper_params"] == ""
    assert "errors" not in hb and "seeds" not in hb


def test_missing_or_empty_results(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ResultsError, match="nowhere: no such directory"):
        write_report(tmp_path / "nowhere")
    with pytest.raises(ResultsError, match="results.jsonl: no results file"):
        write_report(tmp_path)
    results_path(tmp_path).write_text("\n", encoding="utf-8")
    with pytest.raises(ResultsError, match="results.jsonl: holds no result records"):
        write_report(tmp_path)
    results_path(tmp_path).write_text('{"epochs": []}\n', encoding="utf-8")
    with pytest.raises(ResultsError, match="holds no result records"):
        write_report(tmp_path)
    assert "results.jsonl:1: skipping a line that is not a result record: no 'key'" in caplog.text
