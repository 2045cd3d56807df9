"""A failed run's traceback: kept whole in its record, and read back with the plugin's frames
first, so a plugin author sees the call in their own code that failed, not only torch's frames.

A frame is the *plugin's* when its file is none of the infrastructure's: the harness package,
Python's standard library, torch, torchdiffeq, torchode or pluggy (the built-in plugins in
``harness_plugins`` count as plugins). The text is parsed, so records written on another machine
are read the same way as far as their paths tell.
"""
from __future__ import annotations

import importlib.util
import re
import sysconfig
import traceback
from dataclasses import dataclass
from functools import cache
from pathlib import Path

#: Packages whose frames are the machinery around a plugin's code, not the plugin's.
INFRASTRUCTURE_PACKAGES = ("torch", "torchdiffeq", "torchode", "pluggy")

#: Plugin frames shown where a failure is summarised (the record keeps all of them).
SHOWN_FRAMES = 4

_FRAME = re.compile(r'^  File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<function>.+)$')


@dataclass(frozen=True)
class Frame:
    """One frame of a formatted traceback: where, and the source line when it was shown."""

    file: str
    line: int
    function: str
    code: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} in {self.function}" + (f": {self.code}" if self.code else "")


def format_failure(error: BaseException) -> str:
    """The whole traceback of ``error``, with its chained causes, as Python prints it."""
    return "".join(traceback.format_exception(error))


def frames(text: str) -> list[Frame]:
    """The frames of a formatted traceback, in its order (innermost call last, per chained
    exception)."""
    lines = text.splitlines()
    found = []
    for index, line in enumerate(lines):
        match = _FRAME.match(line)
        if match:
            following = lines[index + 1] if index + 1 < len(lines) else ""
            code = following.strip() if following.startswith("    ") else ""
            found.append(Frame(match["file"], int(match["line"]), match["function"], code))
    return found


def plugin_frames(text: str) -> list[Frame]:
    """The frames of a formatted traceback that are in a plugin's code (see the module's
    docstring), innermost last."""
    return [frame for frame in frames(text) if not _is_infrastructure(frame.file)]


def failure_lines(record: dict) -> list[str]:
    """A failed record's error, then the last plugin frames of its traceback (innermost last)
    and how many other frames the record keeps."""
    lines = [str(record.get("error"))]
    text = record.get("traceback") or ""
    if not text:
        return lines
    own, every = plugin_frames(text), frames(text)
    shown = own[-SHOWN_FRAMES:]
    if shown:
        lines.append("in the plugin's code (innermost last):")
        lines += [f"  {frame}" for frame in shown]
    else:
        lines.append("no frame of the traceback is in a plugin's code")
    rest = len(every) - len(shown)
    if rest:
        lines.append(f"{rest} more frames (harness, torch, Python) in the record's traceback")
    return lines


def _is_infrastructure(file: str) -> bool:
    path = file.replace("\\", "/")
    if path.startswith("<"):  # <frozen runpy>, <string>: Python's own
        return True
    return any(path.startswith(root) or f"/site-packages/{name}/" in path
               for root, name in _roots())


@cache
def _roots() -> tuple[tuple[str, str], ...]:
    """(directory with a trailing slash, package name) of every infrastructure package here,
    and Python's standard library."""
    places = [(Path(__file__).parents[1], "harness"), (Path(sysconfig.get_paths()["stdlib"]), "")]
    for name in INFRASTRUCTURE_PACKAGES:
        spec = importlib.util.find_spec(name)
        places += [(Path(location), name)
                   for location in (spec.submodule_search_locations or [] if spec else [])]
    return tuple(dict.fromkeys((f"{directory}/", name) for place, name in places
                               for directory in (place, place.resolve())))
