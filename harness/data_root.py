"""Where a task's data lives: the one rule for the data root (:func:`data_root_or_default`,
used by the suite loader and by tasks alike) and the error a task raises when its data is not
there (:class:`DataNotFound`, recorded as the failure kind ``data_missing``).

Nothing of the harness is imported here.
"""
from __future__ import annotations

import os
from pathlib import Path


class DataNotFound(FileNotFoundError):
    """A task's data is not where it was looked for; the message says where and how to get it."""


#: Where tasks look for data when nothing names a data root (no --data-root, no suite
#: ``data_root``, no $HARNESS_DATA_ROOT).
DEFAULT_DATA_ROOT = Path("~/.cache/harness/data")
#: The environment variable naming the data root when neither the command nor the suite does.
DATA_ROOT_VARIABLE = "HARNESS_DATA_ROOT"


def data_root_or_default(given: str | os.PathLike | None = None,
                         in_suite: str | os.PathLike | None = None,
                         suite_dir: str | os.PathLike = ".") -> Path:
    """The data root, the one rule for it; first found wins:

    1. ``given`` (the command's ``--data-root``, or the run's resolved root), relative to the
       working directory;
    2. ``in_suite`` (a suite's ``data_root:``), relative to ``suite_dir``;
    3. ``$HARNESS_DATA_ROOT``;
    4. :data:`DEFAULT_DATA_ROOT`.

    ``~`` is expanded and the path made absolute (worker processes and Ray tasks may start in
    another directory). A task calls it with the ``data_root`` it is handed."""
    if given is not None:
        chosen = Path(given).expanduser()
    elif in_suite is not None:
        chosen = Path(suite_dir) / Path(in_suite).expanduser()
    else:
        chosen = Path(os.environ.get(DATA_ROOT_VARIABLE) or DEFAULT_DATA_ROOT).expanduser()
    return chosen.resolve()
