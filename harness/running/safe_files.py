"""Writing inside a folder without following any link below it.

A results folder (and a report folder) may hold whatever its previous users planted: a symlink
named ``index.html`` pointing at someone's file, a ``figures`` folder that is a link elsewhere, a
FIFO named ``results.jsonl``. The folder the user names is theirs (it may itself be a link); below
it nothing is followed:

* folders are walked one component at a time with directory descriptors opened ``O_NOFOLLOW``:
  a component that is a link or no folder is refused with :class:`UnsafePathError`;
* whole files (report pages, figures, the claims copy, checkpoints) are written to a new
  temporary file in their folder (``O_EXCL | O_NOFOLLOW``), fsynced, then renamed over the name:
  a link there is replaced, never written through, and a reader sees the old file or the new one;
* files that are appended to (``results.jsonl``, the lock) are opened with
  :func:`open_regular`, which refuses a link, a FIFO or a device.
"""
from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Union


class UnsafePathError(OSError):
    """Something in a results or report folder that the harness will not follow or use: a
    link, a FIFO, a device, or a file where a folder should be (the message names it and what
    to do)."""

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"

    def __repr__(self) -> str:  # what a plugin failure shows: the file named
        return f"{type(self).__name__}({str(self)!r})"


def open_regular(path: str | os.PathLike, flags: int, dir_fd: int | None = None,
                 follow: bool = False) -> int:
    """``os.open`` of a plain file (``O_NONBLOCK`` while opening, so a FIFO cannot block);
    a symlink (unless ``follow``), a FIFO, a device or a folder raises :class:`UnsafePathError`.
    ``path`` is relative to ``dir_fd`` when that is given."""
    nofollow = 0 if follow else os.O_NOFOLLOW
    try:
        fd = os.open(path, flags | nofollow | os.O_NONBLOCK | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):  # a link; a FIFO to write
            raise UnsafePathError(error.errno, _REFUSED, str(path)) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafePathError(errno.EINVAL, _REFUSED, str(path))
    os.set_blocking(fd, True)
    return fd


_REFUSED = ("not a regular file (symbolic links, FIFOs, devices and folders are refused; "
            "move it aside)")


def check_regular(path: Path) -> None:
    """Refuse (:class:`UnsafePathError`) whatever is at ``path`` unless it is a plain file or
    nothing: for a file a library opens itself (a planted link is caught, not a race)."""
    if os.path.lexists(path) and not stat.S_ISREG(os.lstat(path).st_mode):
        raise UnsafePathError(errno.EINVAL, _REFUSED, str(path))


def open_folder(root: Path, below: PurePosixPath = PurePosixPath(), create: bool = True) -> int:
    """A descriptor of ``root/below``: ``root`` as given (created if missing), each component of
    ``below`` opened without following links (created if missing and ``create``)."""
    if create:
        root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    where = root
    for part in below.parts:
        where = where / part
        try:
            if create:
                with suppress(FileExistsError):
                    os.mkdir(part, 0o777, dir_fd=fd)
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                            dir_fd=fd)
        except OSError as error:
            if error.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafePathError(error.errno, "is a symbolic link or not a folder; nothing "
                                      "below a results or report folder is followed: move it "
                                      "aside", str(where)) from None
            raise
        finally:
            os.close(fd)
        fd = child
    return fd


@dataclass(frozen=True)
class Folder:
    """A folder ``root/below`` written without following links below ``root`` (the folder the
    user named, or the results folder a report goes into)."""

    root: Path
    below: PurePosixPath = field(default_factory=PurePosixPath)

    @classmethod
    def of(cls, where: "Folder | Path") -> "Folder":
        """``where`` as a folder; a plain path is a root of its own."""
        return where if isinstance(where, Folder) else cls(Path(where))

    @property
    def path(self) -> Path:
        return self.root / self.below

    def __truediv__(self, name: str) -> "Folder":
        return Folder(self.root, self.below / name)

    def open(self, create: bool = True) -> int:
        """A descriptor of this folder (see :func:`open_folder`); the caller closes it."""
        return open_folder(self.root, self.below, create)

    def write(self, name: str, data: bytes | str) -> Path:
        """Replace the file ``name`` in this folder with ``data`` (text as UTF-8)."""
        with self.replacing(name) as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
        return self.path / name

    @contextmanager
    def replacing(self, name: str) -> Iterator[BinaryIO]:
        """A new binary file whose content replaces ``name`` in this folder when the block ends
        without error (written beside it as ``name.<pid>-<ns>.tmp``, fsynced, renamed: a link
        named ``name`` is replaced, not followed); on an error the temporary goes."""
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"{name!r} is not a file name")
        folder = self.open()
        temporary = f"{name}.{os.getpid()}-{time.time_ns()}.tmp"
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o644, dir_fd=folder)
            try:
                with os.fdopen(fd, "wb") as handle:
                    yield handle
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)
            except BaseException:
                with suppress(OSError):
                    os.unlink(temporary, dir_fd=folder)
                raise
        finally:
            os.close(folder)


#: Where a writer puts its files: a :class:`Folder`, or a plain path (a root of its own).
Destination = Union[Folder, Path]
