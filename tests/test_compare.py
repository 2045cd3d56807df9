"""`harness compare`: a planted regression is worse, a change within the seeds' spread is
noise, an improvement is better; the exit code and bad input."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main
from harness.reports.aggregate import stat
from harness.reports.compare import BETTER, MISSING, NOISE, WORSE, compare, render, verdict
from tests.result_records import curve_run, write_records


def _runs(model: str, backward: list[float], accuracy: float = 0.9, task: str = "pc") -> list:
    """One run per value of ``backward`` (the seeds' backward NFE), forward NFE 50, 1 s."""
    return [curve_run(task, model, seed, {"backward_nfe": [value], "forward_nfe": [50.0],
                                          "test_accuracy": [accuracy]})
            for seed, value in enumerate(backward)]


def _write(directory: Path, runs: list) -> Path:
    for run in runs:
        write_records(directory, [run])
    return directory


BASE = _runs("hbnode", [98.0, 100.0, 102.0]) + _runs("node", [200.0, 210.0, 190.0])


def _verdicts(new: list, threshold: float = 0.05) -> dict[tuple[str, str], str]:
    comparison = compare(BASE, new, threshold)
    return {(c.group.split("/")[1].split()[0], c.quantity): c.verdict for c in comparison.changes}


def test_a_planted_regression_is_worse_and_a_change_within_the_spread_is_noise() -> None:
    new = _runs("hbnode", [128.0, 130.0, 132.0]) + _runs("node", [203.0, 215.0, 195.0])
    verdicts = _verdicts(new)
    assert verdicts["hbnode", "backward NFE"] == WORSE
    assert verdicts["node", "backward NFE"] == NOISE     # +5 against a spread (std) of 10
    assert verdicts["hbnode", "forward NFE"] == NOISE    # unchanged
    assert verdicts["hbnode", "test accuracy"] == NOISE


def test_better_and_the_metric_direction() -> None:
    new = _runs("hbnode", [70.0, 72.0, 74.0], accuracy=0.8) + _runs("node", [200.0, 210.0, 190.0],
                                                                   accuracy=0.95)
    verdicts = _verdicts(new)
    assert verdicts["hbnode", "backward NFE"] == BETTER
    assert verdicts["hbnode", "test accuracy"] == WORSE  # accuracy: higher is better
    assert verdicts["node", "test accuracy"] == BETTER


def test_the_verdict_rule() -> None:
    base, one = stat([100.0, 110.0]), stat([100.0])
    assert verdict(base, stat([112.0]), True, 0.0) == NOISE   # within base's std 7.07
    assert verdict(base, stat([115.0]), True, 0.0) == WORSE
    assert verdict(one, stat([104.0]), True, 0.05) == NOISE    # one seed: the threshold only
    assert verdict(one, stat([106.0]), True, 0.05) == WORSE
    assert verdict(one, stat([94.0]), True, 0.05) == BETTER
    assert verdict(one, stat([106.0]), False, 0.05) == BETTER
    assert verdict(one, stat([]), True, 0.05) == MISSING


def test_render_lists_changes_and_unmatched_groups() -> None:
    new = _runs("hbnode", [128.0, 130.0, 132.0]) + _runs("sonode", [1.0])
    text = render(compare(BASE, new))
    line = next(line for line in text.splitlines()
                if line.startswith("pc/hbnode") and "backward NFE" in line)
    assert "100 ± 2 (n=3)" in line and "130 ± 2 (n=3)" in line and "+30.0%" in line
    assert line.rstrip().endswith("worse")
    assert "1 task/model group not compared, only in BASE: pc/node [test]" in text
    assert "1 task/model group not compared, only in NEW: pc/sonode [test]" in text
    counts = next(line for line in text.splitlines() if line.startswith("quantities compared:"))
    assert "1 worse" in counts and "0 missing (a value on one side only)" in counts


def test_the_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = _write(tmp_path / "base", BASE)
    same = _write(tmp_path / "same", _runs("hbnode", [99.0, 101.0, 103.0])
                  + _runs("node", [200.0, 210.0, 190.0]))
    worse = _write(tmp_path / "worse", _runs("hbnode", [128.0, 130.0, 132.0]))
    assert main(["compare", str(base), str(same), "--fail-on-worse"]) == 0
    assert "0 worse" in capsys.readouterr().out
    assert main(["compare", str(base), str(worse)]) == 0
    assert main(["compare", str(base), str(worse), "--fail-on-worse"]) == 1
    assert "worse" in capsys.readouterr().out
    assert main(["compare", str(base), str(worse), "--threshold", "0.5",
                 "--fail-on-worse"]) == 0
    capsys.readouterr()
    assert main(["compare", str(base), str(tmp_path / "nowhere")]) == 2
    error = capsys.readouterr().err
    assert "nowhere: no such directory" in error and "Traceback" not in error
