"""The results directory of ``harness run``: checked before anything is written into it."""
from __future__ import annotations

from pathlib import Path


class OutDirError(ValueError):
    """A results directory that cannot be used; the message names it, why, and what would do."""


_VALID = "valid: a directory for this suite's results, such as results/<suite name>"


def check_out_dir(path: Path) -> Path:
    """``path`` resolved, if results may go there: not the file-system root (results.jsonl and
    report/ would land among the system's folders), not an existing file."""
    resolved = Path(path).resolve()
    shown = str(path) if resolved == Path(path) else f"{path} (that is, {resolved})"
    if resolved == Path(resolved.anchor):
        raise OutDirError(f"{shown}: is the file-system root; {_VALID}")
    if resolved.exists() and not resolved.is_dir():
        raise OutDirError(f"{shown}: is a file, not a directory; {_VALID}")
    return resolved
