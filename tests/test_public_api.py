"""The public API (``harness/__init__.py``) stays what plugins import: the same names, each
resolving from whichever module inside the harness now defines it."""
from __future__ import annotations

import subprocess
import sys

import harness

#: What ``harness`` offers. Changing this set changes the public API: on purpose, with the
#: plugin guide and the contract version in mind.
PUBLIC_NAMES = {
    # the plugin contract (harness.contract) and the leaves it names
    "CONTRACT_VERSION", "STARTS", "BuildContext", "DifferentiableField", "EpochBatches",
    "Family", "ODEBlockLike", "Pullback", "State", "Task", "TaskData", "VJP", "VectorField",
    "hookimpl", "hookspec", "DEFAULT_DATA_ROOT", "DataNotFound", "data_root_or_default",
    "Structure", "WidthNames", "PROFILES",
    # the executor plugin point, results, the version
    "Executor", "ExecutorUnavailable", "Work", "load_results", "__version__",
}


def test_the_public_names_are_the_documented_ones():
    assert set(harness.__all__) == PUBLIC_NAMES
    assert PUBLIC_NAMES <= set(dir(harness))


def test_every_public_name_resolves():
    for name in PUBLIC_NAMES:
        assert getattr(harness, name) is not None, name


def test_importing_harness_imports_nothing_heavy():
    """The contract's names load on first use, so the CLI sets up its signal handling before
    torch starts importing (harness/__init__.py)."""
    code = "import sys, harness; print(sorted({'torch', 'pandas'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
