"""Unique ids made without a system call each: a random per-process prefix and a counter.

``uuid4`` reads the kernel's random source on every call; on the submission and planning
paths (tens of thousands of ids a second, while other threads want the interpreter) that
showed up in profiles. Ids are unique across processes by the 64-bit random prefix.
"""

from __future__ import annotations

import itertools
import secrets

_PREFIX = secrets.token_hex(8)
_COUNTER = itertools.count()


def new_id() -> str:
    """32 hex digits, like ``uuid4().hex``."""
    return f"{_PREFIX}{next(_COUNTER) & 0xFFFF_FFFF_FFFF_FFFF:016x}"
