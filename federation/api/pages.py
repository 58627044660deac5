"""Pagination of list endpoints: ``?limit=N`` items per page, ``?next=TOKEN`` to go on.

A list is sorted by a key; a page holds the first ``limit`` items whose key is at or after
the token's, and the answer's ``X-Federation-Next-Token`` header holds the key of the first
item of the next page (absent on the last page). The token is the key itself, encoded: an
item added or removed between two calls is seen at most once and never skips another.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fastapi import Query

from federation.errors import ValidationError

T = TypeVar("T")
Key = tuple[Any, ...]
MAX_LIMIT = 10_000
NEXT_HEADER = "X-Federation-Next-Token"

LimitQuery = Query(default=None, ge=1, le=MAX_LIMIT, description=(
    f"at most this many items (1..{MAX_LIMIT}); more pages are announced in {NEXT_HEADER}"))
NextQuery = Query(default=None, min_length=1, max_length=2048, description=(
    f"where the page starts: the {NEXT_HEADER} of the previous page"))


def encode_token(key: Key) -> str:
    raw = json.dumps(list(key), separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, shape: tuple[type, ...]) -> Key:
    """The key in a token, checked against the list's key shape; a 400 naming ``next``."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ValidationError("next is not a token from this list", field="next") from None
    if not isinstance(value, list) or len(value) != len(shape) or not all(
            type(item) is kind for item, kind in zip(value, shape, strict=True)):
        raise ValidationError("next is not a token from this list", field="next")
    return tuple(value)


def page(items: Sequence[T], key: Callable[[T], Key], limit: int | None,
         start: Key | None, headers: dict[str, str]) -> list[T]:
    """One page of ``items`` (sorted by ``key``); the next page's token goes to
    ``headers``."""
    keys = None
    begin = 0
    if start is not None:
        keys = [key(item) for item in items]
        begin = bisect.bisect_left(keys, start)
    if limit is None:
        return list(items[begin:])
    end = begin + limit
    if end < len(items):
        headers[NEXT_HEADER] = encode_token(keys[end] if keys is not None else key(items[end]))
    return list(items[begin:end])
