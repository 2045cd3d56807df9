"""The record store: the one place result records are written and read.

A results directory holds ``results.jsonl``, one JSON record per line, appended as runs end.
JSON Lines stays the format (people read it, pandas and jq load it, earlier results stay
valid); the store gives it the guarantees a database would (docs/design.md says why not
SQLite):

* **one writer**: a driver holds an exclusive lock (``flock`` on ``.harness.lock``, released by
  the kernel when the process dies, so a kill never leaves a stale lock); a second driver is
  refused with the holder's pid;
* **no torn tail**: on opening for writing, a last line without its newline that is not a
  whole record (a crash mid-write) is moved aside to ``results.jsonl.torn-<time>`` and the file
  cut back to its last whole line, with a warning, before anything is appended (a whole record
  missing only its newline gets it);
* **checked, durable appends**: each record is one line written in full (a short write is
  continued; a failure — disk full, file too large, read-only — cuts the file back to where it
  was and raises :class:`StoreWriteError`), then fsynced, with SIGINT/SIGTERM held off until
  the write is done (:mod:`harness.running.held_signals`);
* **bounded reading** (:mod:`harness.running.results_lines`): a FIFO, a device or a link in
  the folder is refused, not waited on or followed; committed records may be gzip-compressed
  (``results.jsonl.gz``, read first), with their decompression bounded;
* **tolerant reading**: lines that are not whole records (bad JSON, ``[1]``, ``null``, a
  record missing a required field of :class:`harness.record.RunRecord` or with a field of the
  wrong type) are skipped with a warning naming the file and the line;
* **one rule for which record stands for a run** (:func:`standing`): the latest ``ok``
  record of its key, else its latest failed one. ``run`` (what to skip), ``report``,
  ``compare`` and ``check`` all read through it.
"""
from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from harness.record import RunRecord, record_problem
from harness.running.held_signals import signals_held
from harness.running.results_lines import UnreadableResults, record_lines
from harness.running.safe_files import Folder, UnsafePathError, open_regular

RESULTS_FILE = "results.jsonl"
#: Committed records may be compressed; readers read this before ``results.jsonl``.
COMPRESSED_FILE = "results.jsonl.gz"
LOCK_FILE = ".harness.lock"
log = logging.getLogger("harness")

class StoreError(Exception):
    """The results directory cannot be used as asked."""


class StoreBusy(StoreError):
    """Another driver holds the results directory."""


class StoreWriteError(StoreError):
    """A record could not be made durable (disk full, file too large, read-only, …)."""


class ResultsError(StoreError, ValueError):
    """Results that cannot be read: a missing directory or file, no records in it, or in its
    place something that is no plain file (a link inside a results folder, a FIFO, a device)
    or a gzip bomb."""


def results_path(out_dir: str | os.PathLike) -> Path:
    return Path(out_dir) / RESULTS_FILE


def results_files(directory: str | os.PathLike) -> list[Path]:
    """The record files of a results folder, in reading order: the compressed committed
    records, then the file ``harness run`` appends to (those that are there)."""
    return [Path(directory) / name for name in (COMPRESSED_FILE, RESULTS_FILE)
            if os.path.lexists(Path(directory) / name)]


def locate(given: str | os.PathLike) -> list[Path]:
    """The results files named by ``given``: those of a results folder (:func:`results_files`),
    or the file itself; :class:`ResultsError` otherwise."""
    path = Path(given)
    valid = (f"valid: a directory holding {RESULTS_FILE} (written by `harness run`) or "
             f"{COMPRESSED_FILE}, or such a file")
    if not path.exists():
        raise ResultsError(f"{path}: no such directory or file; {valid}")
    if path.is_dir():
        files = results_files(path)
        if not files:
            raise ResultsError(f"{results_path(path)}: no results file here; {valid}")
        return files
    if not path.is_file():
        raise ResultsError(f"{path}: no results file here; {valid}")
    return [path]


# --- reading ----------------------------------------------------------------------------------


def read_records(path: str | os.PathLike) -> list[RunRecord]:
    """Every usable record of a results folder (:func:`results_files`) or of one results file
    (``.gz``: compressed), in file order; each line that is not one is skipped with a warning
    naming the file and the line. A missing file holds no records. Reading is bounded
    (:mod:`harness.running.results_lines`): a file in the folder that is a link, a FIFO, a
    device or a folder, or a gzip bomb, raises :class:`ResultsError`."""
    path = Path(path)
    if path.is_dir():
        return [record for file in results_files(path) for record in _file_records(file, False)]
    return _file_records(path, True)


def _file_records(path: Path, follow: bool) -> list[RunRecord]:
    records = []
    try:
        for number, line, complete in record_lines(path, follow):
            if not line.strip():
                continue
            record, problem = _parse(line)
            if problem and not complete:  # cut mid-write, or being written
                log.warning("%s:%d: skipping the last line: it was cut off (a crash while "
                            "writing, or a write in progress)", path, number)
            elif problem:
                log.warning("%s:%d: skipping a line that is not a result record: %s", path,
                            number, problem)
            else:  # a whole record, even the last one without its newline
                records.append(record)
    except FileNotFoundError:
        return []
    except (UnsafePathError, UnreadableResults) as error:
        raise ResultsError(str(error)) from None
    except OSError as error:
        raise ResultsError(f"{path}: cannot be read: {error.strerror or error}") from None
    return records


def _parse(line: bytes) -> tuple[Any, str | None]:
    """A line as a record, and what is wrong with it as one (None: nothing)."""
    try:
        record = json.loads(line)
        return record, record_problem(record)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        return None, f"not valid JSON ({type(error).__name__})"


def standing(records: Iterable[RunRecord]) -> list[RunRecord]:
    """The record that stands for each run key: its latest ``ok`` record, else its latest
    failed one; in the order the keys first appear."""
    chosen: dict[str, RunRecord] = {}
    for record in records:
        held = chosen.get(record["key"])
        if held is None or record["status"] == "ok" or held["status"] != "ok":
            chosen[record["key"]] = record
    return list(chosen.values())


def finished_keys(records: Iterable[RunRecord]) -> set[str]:
    """Keys whose standing record is ``ok``: runs a rerun skips."""
    return {record["key"] for record in standing(records) if record["status"] == "ok"}


def load_results(paths: Sequence[str | os.PathLike]) -> list[RunRecord]:
    """The standing records of each results directory (or file) given, one after another: a
    directory's records never shadow another's (two directories holding the same run, say
    trained solo in one and in an ensemble in the other, keep a record each)."""
    records: list[RunRecord] = []
    for given in paths:
        files = locate(given)
        found = [record for file in files for record in _file_records(file, file == Path(given))]
        if not found:
            raise ResultsError(f"{' and '.join(map(str, files))}: holds no result records")
        records += standing(found)
    return records


# --- writing ----------------------------------------------------------------------------------


class ResultStore:
    """A results directory opened for writing by one driver: locked, its tail repaired.

    Use as a context manager; :meth:`append` makes one record durable."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.path = results_path(self.directory)
        self._lock_fd: int | None = None

    def __enter__(self) -> "ResultStore":
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock()
            self._repair_tail()
        except UnsafePathError as error:
            self._unlock()
            raise ResultsError(str(error)) from None
        except OSError as error:
            self._unlock()
            raise StoreWriteError(f"{self.directory}: cannot open the results directory for "
                                  f"writing: {error.strerror or error}") from None
        except BaseException:
            self._unlock()
            raise
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._unlock()

    def records(self) -> list[RunRecord]:
        """The records of the results folder (its compressed ones too)."""
        return read_records(self.directory)

    def append(self, record: RunRecord) -> None:
        """Append ``record`` as one whole line and fsync it; on failure the file is as it was
        and :class:`StoreWriteError` says why."""
        line = (json.dumps(record, default=_jsonable) + "\n").encode()
        with signals_held():
            try:
                fd = open_regular(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            except OSError as error:
                raise StoreWriteError(f"{self.path}: cannot open for writing: "
                                      f"{error.strerror or error}") from None
            try:
                size = os.fstat(fd).st_size
                try:
                    _write_all(fd, line)
                    os.fsync(fd)
                except OSError as error:
                    _cut_back(fd, size)
                    raise StoreWriteError(
                        f"{self.path}: could not write the record of run {record.get('key')} "
                        f"({error.strerror or error}); the file is as it was. Free space (or "
                        f"fix the file system) and rerun the same command to write it") from None
            finally:
                os.close(fd)

    def _lock(self) -> None:
        fd = open_regular(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreBusy(f"{self.directory}: another harness run is writing here (pid "
                            f"{holder}); wait for it to end or use another --out") from None
        pid = f"{os.getpid()}\n".encode()
        os.pwrite(fd, pid, 0)
        os.ftruncate(fd, len(pid))
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def _repair_tail(self) -> None:
        """Make appends start on a fresh line: a last line that lacks its newline gets one if it
        is a whole record, else it is moved aside (a crash mid-write)."""
        if not os.path.lexists(self.path):
            return
        with os.fdopen(open_regular(self.path, os.O_RDWR), "rb+") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size == 0:
                return
            handle.seek(size - 1)
            if handle.read(1) == b"\n":
                return
            start = _last_line_start(handle, size)
            handle.seek(start)
            fragment = handle.read()
            whole = _parse(fragment)[1] is None  # only its newline is missing
            if whole:
                handle.write(b"\n")
            else:
                stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
                aside = Folder(self.directory).write(f"{RESULTS_FILE}.torn-{stamp}", fragment)
                handle.truncate(start)
            handle.flush()
            os.fsync(handle.fileno())
        if not whole:
            log.warning("%s: its last line was cut off (%d bytes, a crash while writing?); "
                        "moved it to %s and continued after the last whole record", self.path,
                        len(fragment), aside.name)


def _last_line_start(handle: Any, size: int) -> int:
    """Offset just after the last newline before ``size`` (0 when there is none)."""
    position = size
    while position > 0:
        step = min(65536, position)
        handle.seek(position - step)
        chunk = handle.read(step)
        found = chunk.rfind(b"\n")
        if found >= 0:
            return position - step + found + 1
        position -= step
    return 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.ENOSPC, "no bytes could be written")
        view = view[written:]


def _cut_back(fd: int, size: int) -> None:
    """Remove a partial line after a failed write (best effort: a read-only disk refuses it,
    and the next opening moves the torn line aside)."""
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    except OSError:
        pass


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)
