"""A ``compare`` check between values of a configuration key (``by``: GRAND-l against GRAND++-l,
a task option, within each model) and only where another key has some values (``where``: the
large integration times)."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.reports.claims import ClaimsError, load_claims
from tests.claim_records import claims_file, verdict
from tests.result_records import curve_run


def _runs(accuracy: dict[tuple[str, float], list[float]]) -> list:
    """One single-epoch run of node per seed, dynamics and end time, test accuracy as given."""
    runs = []
    for (dynamics, end_time), values in accuracy.items():
        for seed, value in enumerate(values):
            run = curve_run("pc", "node", seed, {"test_accuracy": [value]},
                            config={"task_options": {"dynamics": dynamics, "end_time": end_time}})
            run["key"] += f"/{dynamics}/{end_time}"
            runs.append(run)
    return runs


_RUNS = {("grand-l", 1.0): [0.80, 0.81, 0.79, 0.80], ("grand++-l", 1.0): [0.80, 0.79, 0.81, 0.80],
         ("grand-l", 64.0): [0.30, 0.32, 0.31, 0.29], ("grand++-l", 64.0): [0.70, 0.72, 0.71, 0.69]}
_BY = "      - compare: {value: test_accuracy, by: task_options.dynamics, higher: [grand++-l], " \
      "than: [grand-l]"


def test_values_of_a_key_are_compared_within_each_setting_of_the_rest(tmp_path: Path):
    found, evidence = verdict(tmp_path, _BY + "}\n", _runs(_RUNS))
    assert found == "inconclusive"  # equal at T = 1
    assert any(line.startswith("[node, end_time=64] grand++-l 0.705") for line in evidence)
    assert not any("not comparable" in line for line in evidence)


def test_where_keeps_the_settings_named(tmp_path: Path):
    found, evidence = verdict(tmp_path, _BY + ", where: {task_options.end_time: [64.0]}}\n",
                              _runs(_RUNS))
    assert found == "holds"
    assert not any("end_time=1" in line for line in evidence)
    reversed_runs = {("grand-l", 64.0): _RUNS[("grand++-l", 64.0)],
                     ("grand++-l", 64.0): _RUNS[("grand-l", 64.0)]}
    assert verdict(tmp_path, _BY + "}\n", _runs(reversed_runs))[0] == "refuted"


def test_a_where_that_is_no_mapping_of_lists_is_refused(tmp_path: Path):
    with pytest.raises(ClaimsError, match=r"where: .* is not a mapping of key to values"):
        load_claims(claims_file(tmp_path, _BY + ", where: {task_options.end_time: 64}}\n"))
