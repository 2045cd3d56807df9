"""Every script in benchmarks/ imports against today's harness: the docs quote their numbers
and tell users to run them, and a renamed function must fail here, not in a user's hands
(``backends.py`` and ``authors_code.py`` imported a ``runner.train`` that no longer existed)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).parents[1] / "benchmarks").glob("*.py"))


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
