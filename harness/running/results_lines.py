"""The lines of a results file, read with bounds: plain ``results.jsonl`` or gzip-compressed
``results.jsonl.gz`` (committed records may be compressed).

Whatever a results folder holds, reading it ends, and soon: a FIFO, a device (a link to
``/dev/zero``), a folder or (inside a folder) a link is refused before a byte is read; a line
longer than :data:`MAX_LINE` bytes is no record and is skipped unread; a ``.gz`` may not
decompress to more than :func:`decompressed_limit` of its size (a gzip bomb is refused), and one
that is cut short or damaged gives the lines before the damage, with a warning.
"""
from __future__ import annotations

import gzip
import logging
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from harness.running.safe_files import open_regular

log = logging.getLogger("harness")

#: The longest line read as a record (the longest records seen are ~100 kB).
MAX_LINE = 64 * 2**20
#: A ``.gz`` decompresses to at most this many times its size, or this floor, whichever is more
#: (result records compress 3-12 times; deflate can reach ~1000 times on crafted input).
GZIP_RATIO, GZIP_FLOOR = 100, 256 * 2**20


class UnreadableResults(ValueError):
    """A results file that is not read: a gzip file that decompresses to more than its bound."""


def decompressed_limit(compressed: int) -> int:
    """The most bytes a ``.gz`` of ``compressed`` bytes may decompress to."""
    return max(GZIP_FLOOR, GZIP_RATIO * compressed)


def record_lines(path: Path, follow: bool = False) -> Iterator[tuple[int, bytes, bool]]:
    """``(line number, line without its newline, whether a newline ended it)`` for each line of
    the file; a ``.gz`` name is decompressed. ``follow``: the user named the file, so a link
    there is theirs to follow (a file found in a results folder is never followed). Raises
    ``FileNotFoundError``, :class:`~harness.running.safe_files.UnsafePathError` (not a plain
    file) or :class:`UnreadableResults`."""
    fd = open_regular(path, os.O_RDONLY, follow=follow)
    with os.fdopen(fd, "rb") as raw:
        if path.name.endswith(".gz"):
            limit = decompressed_limit(os.fstat(fd).st_size)
            with gzip.GzipFile(fileobj=raw) as stream:
                yield from _lines(stream, path, limit)
        else:
            yield from _lines(raw, path, None)


def _lines(stream: BinaryIO, path: Path, limit: int | None) -> Iterator[tuple[int, bytes, bool]]:
    number = total = 0
    while True:
        try:
            line = stream.readline(MAX_LINE + 1)
            too_long = len(line) > MAX_LINE and not line.endswith(b"\n")
            size = len(line) + (_skip_line(stream, limit, total) if too_long else 0)
        except (EOFError, zlib.error, gzip.BadGzipFile) as error:  # only a .gz raises these
            log.warning("%s: cannot be decompressed after line %d (%s: %s; cut short or "
                        "damaged?); the records before it are read", path, number,
                        type(error).__name__, error)
            return
        if not line:
            return
        number, total = number + 1, total + size
        if limit is not None and total > limit:
            raise UnreadableResults(
                f"{path}: decompresses to more than {limit} bytes (the bound is {GZIP_RATIO} "
                f"times its size, at least {GZIP_FLOOR}): refused as a gzip bomb; gunzip it "
                f"yourself if it really holds that many records")
        if too_long:
            log.warning("%s:%d: skipping a line of more than %d bytes: no result record is "
                        "that long", path, number, MAX_LINE)
            continue
        complete = line.endswith(b"\n")
        yield number, line[:-1] if complete else line, complete


def _skip_line(stream: BinaryIO, limit: int | None, total: int) -> int:
    """Read past the rest of an over-long line (no further than a .gz's bound); the bytes read."""
    skipped = 0
    while limit is None or total + skipped <= limit:
        chunk = stream.readline(2**20)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            break
    return skipped
