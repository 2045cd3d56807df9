"""Result records: one JSON object per run, one line each in ``results.jsonl``.

Appends are atomic in practice: each record is one ``os.write`` of one line to a file opened
with O_APPEND and then fsync'ed, so a kill leaves either the whole line or none of it. A torn
last line from another writer is skipped on reading, never fatal.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Iterator

RESULTS_FILE = "results.jsonl"


def results_path(out_dir: str | os.PathLike) -> Path:
    return Path(out_dir) / RESULTS_FILE


def append_record(path: str | os.PathLike, record: dict[str, Any]) -> None:
    line = (json.dumps(record, default=_jsonable) + "\n").encode()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_records(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Yield the records of a results file (or of ``DIR/results.jsonl`` given DIR)."""
    path = Path(path)
    if path.is_dir():
        path = results_path(path)
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                warnings.warn(f"{path}:{number}: skipping a line that is not a whole JSON record")


def finished_keys(path: str | os.PathLike) -> set[str]:
    """Keys of the runs that already ended ``ok`` (a failed run is tried again)."""
    if not Path(path).exists():
        return set()
    return {r["key"] for r in read_records(path) if r.get("status") == "ok" and "key" in r}


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)
