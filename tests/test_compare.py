"""`harness compare`: a planted regression is worse, a change within the seeds' spread is
noise, an improvement is better; with three seeds a side Welch's t-test decides (Holm-corrected);
groups matched across suite names with --match, a warning when nothing matches; the exit code
and bad input."""
from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from harness.cli import main
from harness.reports.aggregate import stat
from harness.reports.compare import (BETTER, MISSING, NOISE, UNDECIDED, UNREADABLE, WORSE,
                                     CompareError, compare, render, verdict)
from harness.reports.seed_statistics import holm, welch
from tests.result_records import curve_run, write_records


def _runs(model: str, backward: list[float], accuracy: float = 0.9, task: str = "pc",
          **options) -> list:
    """One run per value of ``backward`` (the seeds' backward NFE), forward NFE 50, 1 s."""
    return [curve_run(task, model, seed, {"backward_nfe": [value], "forward_nfe": [50.0],
                                          "test_accuracy": [accuracy]}, **options)
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


def test_with_three_seeds_a_side_the_test_decides_not_the_spread() -> None:
    base, new = [100.0, 110.0, 120.0], [112.0, 122.0, 132.0]  # +12 against a std of 10
    assert verdict(stat(base), stat(new), True, 0.05) == WORSE  # the spread rule would call it
    comparison = compare(_runs("hbnode", base), _runs("hbnode", new))
    change = next(c for c in comparison.changes if c.quantity == "backward NFE")
    assert change.test.p == pytest.approx(welch(new, base).p) and change.test.p > 0.05
    assert change.verdict == NOISE
    # four tests (forward, backward, time, accuracy): Holm over all of them
    assert change.p_holm == holm([1.0, change.test.p, 1.0, 1.0])[1]
    two_seeds = compare(_runs("hbnode", base[:2]), _runs("hbnode", new[:2]))
    assert next(c for c in two_seeds.changes if c.quantity == "backward NFE").test is None


def test_a_significant_but_negligible_change_is_noise() -> None:
    base, new = [100.0, 100.1, 100.2], [101.0, 101.1, 101.2]  # +1 %, p < 0.001
    change = next(c for c in compare(_runs("hbnode", base), _runs("hbnode", new)).changes
                  if c.quantity == "backward NFE")
    assert change.p_holm < 0.01 and change.verdict == NOISE
    assert compare(_runs("hbnode", base), _runs("hbnode", new), threshold=0.0).worse


def test_match_across_suite_names_and_warn_when_nothing_matches() -> None:
    base = _runs("hbnode", [98.0, 100.0, 102.0], suite="fast")
    new = _runs("hbnode", [128.0, 130.0, 132.0], suite="torchdiffeq")
    alone = compare(base, new)
    assert not alone.changes and alone.only_base == ["pc/hbnode [fast]"]
    assert alone.warning == ("no group of BASE matches one of NEW by suite, task, model, "
                             "setting: nothing was compared (--match task,model,setting "
                             "matches across suite names)")
    matched = compare(base, new, match=["task", "model", "setting"])
    assert matched.warning is None and not matched.only_base and not matched.only_new
    change = next(c for c in matched.changes if c.quantity == "backward NFE")
    assert change.verdict == WORSE and change.group == "pc/hbnode [fast] → [torchdiffeq]"
    assert compare(base, base).warning is None and compare([], new).warning is None
    with pytest.raises(CompareError, match="valid: a comma-separated subset of suite, task, "
                                           "model, setting"):
        compare(base, new, match=["task", "modle"])
    two_suites = new + _runs("hbnode", [1.0, 2.0, 3.0], suite="other")
    with pytest.raises(CompareError, match=r"NEW: pc/hbnode \[torchdiffeq\] and pc/hbnode "
                                           r"\[other\] both match by task, model"):
        compare(base, two_suites, match=["task", "model"])


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
    other = _write(tmp_path / "other", _runs("hbnode", [128.0, 130.0, 132.0], suite="b"))
    assert main(["compare", str(base), str(other), "--fail-on-worse"]) == 0
    assert "warning: no group of BASE matches one of NEW" in capsys.readouterr().err
    assert main(["compare", str(base), str(other), "--fail-on-worse",
                 "--match", "task,model,setting"]) == 1
    printed = capsys.readouterr()
    assert "1 worse" in printed.out and "warning" not in printed.err
    assert main(["compare", str(base), str(other), "--match", "task,seed"]) == 2
    assert "--match 'task,seed': valid:" in capsys.readouterr().err


def test_times_of_ensemble_members_are_left_out_unless_asked() -> None:
    """A member's times are its ensemble's: no time change is reported for ensemble runs, and
    the NFE still are; --ensemble-times compares them."""
    base = _runs("hbnode", [98.0, 100.0, 102.0])
    new = [{**run, "key": f"e/{run['key']}",
            "ensemble": {"id": "abc", "size": 3, "index": run["seed"]},
            "epochs": [{**e, "train_time_s": 0.1} for e in run["epochs"]]}
           for run in _runs("hbnode", [98.0, 100.0, 102.0])]
    changes = {c.quantity: c for c in compare(base, new).changes}
    assert changes["time/epoch (s)"].verdict == MISSING and changes["time/epoch (s)"].new.n == 0
    assert changes["backward NFE"].new.n == 3
    asked = {c.quantity: c for c in compare(base, new, ensemble_times=True).changes}
    assert asked["time/epoch (s)"].verdict == BETTER and asked["time/epoch (s)"].new.n == 3


def test_times_with_fewer_than_three_seeds_a_side_are_undecided_and_nfe_still_compare() -> None:
    """One timing a side cannot tell code from load: two runs of identical code on a loaded
    machine differed by 52 % per epoch. NFE (deterministic for a seed) are still decided."""
    base = [curve_run("pc", "hbnode", 0, {"train_time_s": [1.0], "forward_nfe": [50.0]})]
    new = [curve_run("pc", "hbnode", 0, {"train_time_s": [1.52], "forward_nfe": [50.0]})]
    changes = {c.quantity: c for c in compare(base, new).changes}
    assert changes["time/epoch (s)"].verdict == UNDECIDED
    assert changes["forward NFE"].verdict == NOISE
    more = [curve_run("pc", "hbnode", 0, {"train_time_s": [1.0], "forward_nfe": [60.0]})]
    assert {c.quantity: c.verdict for c in compare(base, more).changes}["forward NFE"] == WORSE
    slow = [curve_run("pc", "hbnode", s, {"train_time_s": [t]}) for s, t in
            enumerate([1.50, 1.52, 1.54])]
    fast = [curve_run("pc", "hbnode", s, {"train_time_s": [t]}) for s, t in
            enumerate([1.00, 1.01, 1.02])]
    three = {c.quantity: c for c in compare(fast, slow).changes}["time/epoch (s)"]
    assert three.test is not None and three.verdict == WORSE  # three a side: the test decides
    assert "1 undecided" in render(compare(base, new))


def test_a_value_that_is_no_number_is_unreadable_and_fails_the_gate(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """NaN NFE in the new results are not "missing" (a value on one side only) but unreadable,
    and --fail-on-worse fails on them, even when other seeds have numbers."""
    nan = float("nan")
    new = _runs("hbnode", [98.0, 100.0, 102.0]) + _runs("node", [200.0, 210.0, 190.0])
    new[1]["epochs"][0]["backward_nfe"] = nan
    new[4]["epochs"][0]["forward_nfe"] = nan
    changes = {(c.group, c.quantity): c for c in compare(BASE, new).changes}
    assert changes["pc/hbnode [test]", "backward NFE"].verdict == UNREADABLE
    assert changes["pc/node [test]", "forward NFE"].verdict == UNREADABLE
    assert changes["pc/hbnode [test]", "forward NFE"].verdict == NOISE
    assert "100 ± 2.8 (n=2), 1 not a number" in render(compare(BASE, new))
    base, broken = _write(tmp_path / "base", BASE), _write(tmp_path / "new", new)
    assert main(["compare", str(base), str(broken), "--fail-on-worse"]) == 1
    assert "2 unreadable" in capsys.readouterr().out
    assert main(["compare", str(base), str(broken)]) == 0


def test_values_equal_but_for_their_last_digits_compare_without_a_warning() -> None:
    """scipy warns of precision lost to cancellation on nearly identical samples; the test
    computes its variances exactly instead, and says the change is noise."""
    base = _runs("hbnode", [0.1, 0.1 + 1e-17, 0.1])
    new = _runs("hbnode", [0.1, 0.1, 0.1 + 3e-17])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        comparison = compare(base, new)
    assert {c.quantity: c.verdict for c in comparison.changes}["backward NFE"] == NOISE
    assert welch([1.0, 1.0 + 2e-16, 1.0], [2.0, 2.0, 2.0 + 4e-16]).p < 1e-10
