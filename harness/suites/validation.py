"""Checking YAML input (suites, budget and claims files): one problem per line, each naming the
file, the key path, what is wrong and what would be valid, with a did-you-mean for misspelt
names."""
from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Callable, Collection, Iterable

import yaml

#: PyYAML reads a number without a dot, such as 1e-7, as a string: float settings and solver
#: options read such strings as numbers.
NUMERIC = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")


# ---------------------------------------------------------------------------------------------
# Collecting problems.


class Invalid(Exception):
    """A bad value: what is wrong with it, and what would be valid."""

    def __init__(self, what: str, valid: str) -> None:
        super().__init__(what)
        self.what, self.valid = what, valid


class Problems:
    """The problems found in one file, as ``<file>: <key path>: <what is wrong>; <valid>``."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[str, None] = {}  # in order, each once (a grid key is checked per value)

    def add(self, at: str, what: str, valid: str = "") -> None:
        self.lines[f"{self.file}: {at}: {what}" + (f"; {valid}" if valid else "")] = None

    def unknown(self, at: str, what: str, name: Any, choices: Collection[str]) -> None:
        """Report a name that is not one of ``choices``, listing them and the closest."""
        self.add(at, what, valid_choices(choices, name))

    def check(self, at: str, check: Callable[[Any], Any], value: Any) -> Any:
        """``check(value)``, or None after reporting why it is invalid."""
        try:
            return check(value)
        except Invalid as bad:
            self.add(at, bad.what, bad.valid)
            return None

    def raise_if_any(self, error: type[Exception]) -> None:
        if self.lines:
            raise error("\n".join(self.lines))


def valid_choices(choices: Iterable[str], given: Any) -> str:
    """``valid: a, b, c`` plus a did-you-mean for the choice closest to ``given`` (the first
    in alphabetical order among equally close ones: 'dopri' suggests 'dopri5', not 'dopri8')."""
    names = sorted(str(choice) for choice in choices)
    close = difflib.get_close_matches(str(given), names, n=max(len(names), 1))
    if not close:
        return f"valid: {', '.join(names) or 'none'}"
    best = min(close, key=lambda name: (-difflib.SequenceMatcher(None, name, str(given)).ratio(),
                                        name))
    return f"valid: {', '.join(names)} (did you mean {best!r}?)"


def join(at: str, key: Any) -> str:
    return f"{at}.{key}"


# ---------------------------------------------------------------------------------------------
# Single values: each returns the value (normalised) or raises Invalid.


def integer(value: Any, valid: str = "valid: an integer") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"{value!r} is not an integer", valid)
    return value


def positive_int(value: Any) -> int:
    valid = "valid: an integer > 0"
    if integer(value, valid) <= 0:
        raise Invalid(f"{value!r} is not > 0", valid)
    return value


def non_negative_int(value: Any) -> int:
    valid = "valid: an integer >= 0"
    if integer(value, valid) < 0:
        raise Invalid(f"{value!r} is negative", valid)
    return value


def numeric(value: Any) -> Any:
    """``value``, or the float it spells if it is a numeric string such as ``"1e-7"``."""
    return float(value) if isinstance(value, str) and NUMERIC.fullmatch(value) else value


def number(value: Any, valid: str = "valid: a number") -> float:
    """A finite number as a float; numeric strings (YAML's ``1e-7``) included."""
    parsed = numeric(value)
    if isinstance(parsed, bool) or not isinstance(parsed, (int, float)) or not math.isfinite(parsed):
        raise Invalid(f"{value!r} is not a finite number", valid)
    return float(parsed)


def positive_number(value: Any) -> float:
    valid = "valid: a number > 0"
    parsed = number(value, valid)
    if parsed <= 0:
        raise Invalid(f"{value!r} is not > 0", valid)
    return parsed


def fraction(value: Any) -> float:
    """A number from 0 to 1 (a tolerance, a share)."""
    valid = "valid: a number from 0 to 1, e.g. 0.1"
    parsed = number(value, valid)
    if not 0 <= parsed <= 1:
        raise Invalid(f"{value!r} is not from 0 to 1", valid)
    return parsed


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"{value!r} is not a boolean", "valid: true or false")
    return value


def string(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid(f"{value!r} is not a string", "valid: a string")
    return value


def optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``check`` that also accepts None (YAML ``null``)."""
    def optional(value: Any) -> Any:
        if value is None:
            return None
        try:
            return check(value)
        except Invalid as bad:
            raise Invalid(bad.what, f"{bad.valid} or null") from None
    return optional


def choice(choices: Collection[str], noun: str) -> Callable[[Any], str]:
    def choice(value: Any) -> str:
        if isinstance(value, str) and value in choices:
            return value
        raise Invalid(f"{value!r} is not {noun}", valid_choices(choices, value))
    return choice


def list_of(check: Callable[[Any], Any]) -> Callable[[Any], list]:
    """A list, each item passing ``check``."""
    def list_of(value: Any) -> list:
        if not isinstance(value, list):
            raise Invalid(f"{value!r} is not a list", "valid: a list")
        return [check(item) for item in value]
    return list_of


def mapping_of(check: Callable[[Any], Any]) -> Callable[[Any], dict]:
    """A mapping with string keys, each value passing ``check``."""
    def mapping_of(value: Any) -> dict:
        if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
            raise Invalid(f"{value!r} is not a mapping with string keys",
                          "valid: a mapping of name to value")
        return {key: check(item) for key, item in value.items()}
    return mapping_of


#: How a value of each plain type is checked (bool before int: True is an int in Python).
TYPE_CHECKS: dict[type, Callable[[Any], Any]] = {bool: boolean, int: integer, float: number,
                                                 str: string}


def type_check(kind: Any) -> Callable[[Any], Any]:
    """The check of a value declared as ``kind``: bool, int, float, str, ``list[X]``,
    ``dict[str, X]`` and ``X | None`` (``Optional[X]``) are checked; anything else passes."""
    origin, arguments = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        others = [argument for argument in arguments if argument is not type(None)]
        inner = type_check(others[0]) if len(others) == 1 else (lambda value: value)
        return optional(inner) if len(others) < len(arguments) else inner
    if origin is list:
        return list_of(type_check(arguments[0]) if arguments else lambda value: value)
    if origin is dict:
        return mapping_of(type_check(arguments[1]) if arguments else lambda value: value)
    return TYPE_CHECKS.get(kind, lambda value: value)


def settings_of(declared: type, value: Any, at: str, report: Problems) -> Any:
    """``declared`` (a dataclass: a plugin's settings) made from the mapping ``value``, each
    key checked against its field's type; an unknown key, a wrong value or a ValueError from the
    dataclass's own checks is reported (then None)."""
    fields = [field.name for field in dataclasses.fields(declared) if field.init]
    kinds = typing.get_type_hints(declared)
    before = len(report.lines)
    given = mapping(value, at, report, f"a mapping with keys {', '.join(fields) or '(none)'}")
    checked = {}
    for key, item in given.items():
        if key in fields:
            checked[key] = report.check(join(at, key), type_check(kinds[key]), item)
        else:
            report.unknown(join(at, key), f"unknown key {key!r}", key, fields)
    if len(report.lines) > before:
        return None
    try:
        return declared(**checked)
    except ValueError as error:
        report.add(at, str(error))
        return None


def mapping(value: Any, at: str, report: Problems, valid: str) -> dict:
    """``value`` if it is a mapping, else {} after reporting it."""
    if isinstance(value, dict):
        return value
    report.add(at, f"{value!r} is not a mapping", f"valid: {valid}")
    return {}


def non_empty_list(value: Any, at: str, report: Problems, valid: str) -> list:
    """``value`` if it is a non-empty list, else [] after reporting it (None as missing)."""
    if isinstance(value, list) and value:
        return value
    report.add(at, "missing" if value is None else f"{value!r} is not a non-empty list",
               f"valid: {valid}")
    return []


def top_level(document: Any, path: Path, error: type[Exception], keys: Collection[str],
              report: Problems) -> dict:
    """A parsed file's top-level mapping; anything else raises ``error`` at once, and each key
    not in ``keys`` is reported."""
    if not isinstance(document, dict):
        what = "empty file" if document is None else f"{document!r} is not a mapping"
        raise error(f"{path}: top level: {what}; valid: a mapping with keys {', '.join(keys)}")
    for key in document:
        if key not in keys:
            report.unknown(str(key), f"unknown key {key!r}", key, keys)
    return document


#: The deepest nesting a YAML file may have (each mapping, list or value one level): deeper
#: documents are no real input, and PyYAML reads nesting by recursion.
MAX_DEPTH = 50


#: The most values a YAML file may expand to with its aliases resolved: a few anchors repeated
#: in each other ("billion laughs") would otherwise fill the memory of whatever walks the data.
MAX_VALUES = 100_000


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader (nothing is evaluated) that also rejects a key given twice in
    one mapping (safe_load keeps the last silently), nesting deeper than :data:`MAX_DEPTH` and
    documents that expand to more than :data:`MAX_VALUES` values."""

    _depth = 0

    def compose_document(self) -> Any:
        node = super().compose_document()
        if node is not None and _expanded_size(node, {}) > MAX_VALUES:
            raise yaml.composer.ComposerError(
                problem=f"expands to more than {MAX_VALUES} values once its aliases (*name) are "
                        f"resolved; valid: a suite of ordinary size",
                problem_mark=node.start_mark)
        return node

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    problem=f"nested more than {MAX_DEPTH} levels deep; valid: at most "
                            f"{MAX_DEPTH} levels of mappings and lists",
                    problem_mark=self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_mapping_node(self, anchor: Any) -> yaml.MappingNode:
        node = super().compose_mapping_node(anchor)
        _check_unique_keys(self, node)
        return node


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many values ``node`` stands for with every alias copied out (each node counted once
    per place it appears, each computed once)."""
    if id(node) not in sizes:
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        sizes[id(node)] = 1 + sum(_expanded_size(child, sizes) for child in children)
    return sizes[id(node)]


def _check_unique_keys(loader: yaml.SafeLoader, node: yaml.MappingNode) -> None:
    """Raise at the second occurrence of a key written in ``node``, as composed (before merge
    keys ``<<`` bring in keys that the mapping may override). Keys compare as the values they
    load as (``yes`` and ``true`` are one key); a key that is not a scalar is left to the
    constructor, which rejects it."""
    lines: dict[Any, int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key, line = loader.construct_object(key_node), key_node.start_mark.line + 1
        if key in lines:
            raise yaml.constructor.ConstructorError(
                problem=f"key {key!r} is given twice, on line {lines[key]} and line {line}; "
                        f"valid: each key once in a mapping",
                problem_mark=key_node.start_mark)
        lines[key] = line


def read_yaml(path: Path, error: type[Exception], kind: str) -> Any:
    """The parsed YAML document (``yaml.safe_load``'s loader: nothing is evaluated); a missing,
    unreadable or malformed file, a key given twice in a mapping, nesting deeper than
    :data:`MAX_DEPTH` or more than :data:`MAX_VALUES` values raises ``error`` at once.
    ``kind`` names the file for the message."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: file not found; valid: a path to {kind}") from None
    except OSError as problem:
        raise error(f"{path}: cannot read: {problem.strerror}") from None
    except UnicodeDecodeError as problem:
        raise error(f"{path}: not UTF-8 text (byte {problem.start}); valid: {kind} in UTF-8") \
            from None
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as bad:
        mark = getattr(bad, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        problem = getattr(bad, "problem", None) or str(bad)
        raise error(f"{path}: {where}: invalid YAML: {problem}") from None
