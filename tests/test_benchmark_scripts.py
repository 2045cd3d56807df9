"""Every script in benchmarks/ imports against today's harness: the docs quote their numbers
and tell users to run them, and a renamed function must fail here, not in a user's hands
(``backends.py`` and ``authors_code.py`` imported a ``runner.train`` that no longer existed)."""
from __future__ import annotations

import argparse
import importlib.util
import re
from pathlib import Path

import pytest

from harness.plugins import load_registry

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.glob("*.py"))


def test_there_are_benchmark_scripts() -> None:
    assert len(SCRIPTS) >= 5


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_a_benchmark_script_imports_and_runs_nothing_on_import(path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(path.parent))  # as `python benchmarks/x.py` runs it
    source = path.read_text()
    assert 'if __name__ == "__main__":' in source, f"{path.name} runs its work on import"
    spec = importlib.util.spec_from_file_location(f"benchmark_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(getattr(module, "main", None)), f"{path.name} has no main()"


@pytest.mark.slow
def test_the_ensemble_floor_profiles_an_ensemble_and_prints_its_ceiling(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """``ensemble.py --floor`` on two members for four iterations in windows of two: the
    profiler's events (torch.profiler's API, which changes between releases) are tallied into
    a ceiling, with the batched products the members' layers make among its operators."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("benchmark_ensemble_floor",
                                                  BENCHMARKS / "ensemble.py")
    ensemble = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ensemble)
    args = argparse.Namespace(model="hbnode", iterations=4, task="point_cloud")
    ensemble.floor(args, load_registry(), 2, solo=1.0, ensemble=0.5, large_us=0.0, window=2)
    line = capsys.readouterr().out
    assert line.startswith("floor, an ensemble of 2 profiled: in ATen operators"), line
    ceiling = float(re.search(r"at most ([\d.]+)x solo", line).group(1))
    per_seed_ms = float(re.search(r"a call ([\d.]+) CPU ms per seed", line).group(1))
    assert per_seed_ms > 0 and ceiling == pytest.approx(1e3 / per_seed_ms, rel=0.05)
    assert re.search(r"\bb(addb)?mm \d", line), line
