"""Decoding YAML and JSON documents with bounds, for every place that reads one.

A document is reduced to plain JSON values (dict with str keys, list, str, int, finite
float, bool, None) or refused with a :class:`~federation.errors.ValidationError` naming
what was too big or unsupported, so the work and the memory a document costs are bounded
by its size, whoever sent it:

* nesting depth, container sizes, string length and integer digits are capped
  (``Limits``); a 100,000-deep JSON array is a 400, not a ``RecursionError``; an integer of
  5,000 digits is a 400, not a ``ValueError``;
* YAML aliases are allowed but their *expanded* size is counted before anything is built,
  so a "billion laughs" document is refused; a recursive alias is refused;
* YAML is read with the YAML 1.2 core types only: no timestamps, binary, sets or custom
  tags (they do not survive JSON), and one document per body.

This module is pure (no I/O, no threads): the API runs it off the event loop (see
``federation.api.bodies``), the CLI and providers call it directly.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import yaml

from federation.errors import ValidationError

try:  # libyaml's parser is ~10x faster; the pure-Python one gives the same events
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - PyYAML wheels ship libyaml
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]


@dataclass(frozen=True)
class Limits:
    """What one decoded document may hold. ``max_expanded`` bounds the whole value (scalar
    characters plus one per node), aliases expanded: what a client can make the server hold
    or send back."""

    max_depth: int = 64
    max_items: int = 10_000
    max_string: int = 65_536
    max_int_digits: int = 32
    max_expanded: int = 4 << 20


DEFAULT_LIMITS = Limits()
# A snapshot holds the whole cluster: many more records per table, same shape limits.
SNAPSHOT_LIMITS = Limits(max_items=1_000_000, max_expanded=128 << 20)

_INT_LITERAL = re.compile(r"^[-+]?[0-9_]+$|^[-+]?0x[0-9a-fA-F_]+$|^[-+]?0o[0-7_]+$")
_ALLOWED_TAGS = frozenset({
    "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null", "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq", "tag:yaml.org,2002:merge", "!",
})


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    """Safe loading without the YAML 1.1 timestamp type: ``2024-01-01`` stays a string."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}


def decode(data: str | bytes, *, content_type: str = "",
           limits: Limits = DEFAULT_LIMITS) -> Any:
    """Decode one YAML or JSON document within ``limits``. JSON is tried first (it is a
    subset of YAML and far cheaper) unless the content type says YAML."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _refuse(f"the document is not valid UTF-8 (byte {exc.start})") from None
    else:
        text = data
    if "yaml" not in content_type.lower():
        try:
            value = _load_json(text, limits)
        except _NotJson as exc:
            if "json" in content_type.lower():
                raise _refuse(f"invalid JSON: {exc.reason}") from None
        else:
            check_value(value, limits)
            return value
    _check_yaml_events(text, limits)
    try:
        value = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise _refuse(f"invalid YAML: {_one_line(exc)}") from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise _refuse(f"invalid YAML: {exc}") from None
    check_value(value, limits)
    return value


class _NotJson(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _load_json(text: str, limits: Limits) -> Any:
    def parse_int(literal: str) -> int:
        if len(literal.lstrip("-")) > limits.max_int_digits:
            raise _refuse(
                f"an integer has {len(literal.lstrip('-'))} digits: at most "
                f"{limits.max_int_digits} are accepted")
        return int(literal)

    def parse_float(literal: str) -> float:
        value = float(literal)
        if not math.isfinite(value):
            raise _refuse(f"the number {literal[:40]} is out of range")
        return value

    def parse_constant(name: str) -> float:
        raise _refuse(f"{name} is not a JSON number")

    try:
        return json.loads(text, parse_int=parse_int, parse_float=parse_float,
                          parse_constant=parse_constant)
    except json.JSONDecodeError as exc:
        raise _NotJson(str(exc)) from None
    except RecursionError:
        # The C scanner recurses per level; the depth limit is far below where it gives up.
        raise _refuse(
            f"the document is nested deeper than {limits.max_depth} levels") from None


def _one_line(exc: yaml.YAMLError) -> str:
    return " ".join(str(exc).split())[:300]


def _check_yaml_events(text: str, limits: Limits) -> None:
    """Walk the parser's events (libyaml's parser is iterative, so depth costs nothing)
    and refuse the document before a node is built: too deep, too many items, a long
    string, a long integer, an unsupported tag, a recursive alias, or aliases expanding
    past ``max_expanded``."""
    # One frame per open collection: [expanded size so far, child nodes, anchor or None,
    # children per item (2 in a mapping: key and value)].
    stack: list[list[Any]] = []
    sizes: dict[str, int] = {}  # anchor -> expanded size of the node it names
    total = 0
    documents = 0
    try:
        for event in yaml.parse(text, Loader=_Loader):
            size = 0
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise _refuse("expected one YAML document, found several")
                continue
            if isinstance(event, yaml.AliasEvent):
                if event.anchor not in sizes:
                    if any(frame[2] == event.anchor for frame in stack):
                        raise _refuse(f"the YAML alias *{event.anchor} refers to itself")
                    raise _refuse(f"the YAML alias *{event.anchor} is not defined")
                size = sizes[event.anchor]
            elif isinstance(event, yaml.ScalarEvent):
                _check_tag(event.tag)
                _check_scalar(event, limits)
                size = 1 + len(event.value)
                if event.anchor is not None:
                    sizes[event.anchor] = size
            elif isinstance(event, yaml.CollectionStartEvent):
                _check_tag(event.tag)
                if len(stack) >= limits.max_depth:
                    raise _refuse(
                        f"the document is nested deeper than {limits.max_depth} levels")
                per_item = 2 if isinstance(event, yaml.MappingStartEvent) else 1
                stack.append([1, 0, event.anchor, per_item])
                continue
            elif isinstance(event, yaml.CollectionEndEvent):
                size, _, anchor, _ = stack.pop()
                if anchor is not None:
                    sizes[anchor] = size
            else:
                continue
            if stack:
                frame = stack[-1]
                frame[0] += size
                frame[1] += 1
                if frame[1] > limits.max_items * frame[3]:
                    raise _refuse(
                        f"a list or mapping holds more than {limits.max_items} items")
                if frame[0] > limits.max_expanded:
                    raise _expanded_error(limits)
            else:
                total += size
            if total > limits.max_expanded:
                raise _expanded_error(limits)
    except yaml.YAMLError as exc:
        raise _refuse(f"invalid YAML: {_one_line(exc)}") from None


def _expanded_error(limits: Limits) -> ValidationError:
    return _refuse(
        f"the document expands (YAML aliases included) to more than {limits.max_expanded} "
        "characters")


def _check_tag(tag: str | None) -> None:
    if tag is not None and tag not in _ALLOWED_TAGS:
        raise _refuse(f"the YAML tag {tag} is not supported: use plain JSON types")


def _check_scalar(event: yaml.ScalarEvent, limits: Limits) -> None:
    value = event.value
    if len(value) > limits.max_string:
        raise _refuse(f"a string is {len(value)} characters long: at most "
                              f"{limits.max_string} are accepted")
    plain = event.implicit[0] and not event.style
    if (plain or event.tag == "tag:yaml.org,2002:int") and _INT_LITERAL.match(value):
        digits = len(value.lstrip("+-").replace("_", ""))
        if digits > limits.max_int_digits:
            raise _refuse(f"an integer has {digits} digits: at most "
                                  f"{limits.max_int_digits} are accepted")


def check_value(value: Any, limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse anything that is not a plain JSON value within ``limits``, naming where it is
    (iteratively: a deep value cannot exhaust the stack). Also run on YAML results, whose
    types (non-string keys, non-finite floats) JSON cannot carry."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if len(path) >= limits.max_depth:
            raise _refuse(f"the document is nested deeper than {limits.max_depth} levels", path)
        if isinstance(item, dict):
            if len(item) > limits.max_items:
                raise _refuse(f"a mapping holds more than {limits.max_items} items", path)
            for key, child in item.items():
                if not isinstance(key, str):
                    raise _refuse(f"mapping keys must be strings, found {type(key).__name__} "
                                  f"{str(key)[:40]!r}", path)
                if len(key) > limits.max_string:
                    raise _refuse(f"a key is longer than {limits.max_string} characters", path)
                if isinstance(child, (dict, list)):
                    stack.append((child, (*path, key)))
                else:
                    _check_scalar_value(child, limits, path, key)
        elif isinstance(item, list):
            if len(item) > limits.max_items:
                raise _refuse(f"a list holds more than {limits.max_items} items", path)
            for i, child in enumerate(item):
                if isinstance(child, (dict, list)):
                    stack.append((child, (*path, i)))
                else:
                    _check_scalar_value(child, limits, path, i)
        else:
            _check_scalar_value(item, limits, (), None)


def field_of(path: tuple[str | int, ...]) -> str:
    """``("groups", 0, "task")`` -> ``groups[0].task``, the form users see in their file."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _refuse(message: str, path: tuple[str | int, ...] = ()) -> ValidationError:
    return ValidationError(message, field=field_of(path) or "body")


def _check_scalar_value(item: Any, limits: Limits, parent: tuple[str | int, ...],
                        key: str | int | None) -> None:
    if item is None or isinstance(item, bool):
        return
    problem = None
    if isinstance(item, str):
        if len(item) > limits.max_string:
            problem = (f"a string is {len(item)} characters long: at most "
                       f"{limits.max_string} are accepted")
    elif isinstance(item, int):
        if item.bit_length() > limits.max_int_digits * 3.33:  # log2(10) bits per digit
            problem = f"an integer has more than {limits.max_int_digits} digits"
    elif isinstance(item, float):
        if not math.isfinite(item):
            problem = f"the number {item} is not a finite number"
    else:
        problem = f"a value of type {type(item).__name__} is not a JSON value"
    if problem is not None:
        raise _refuse(problem, parent if key is None else (*parent, key))
