"""Ids made without a system call are unique and shaped like uuid4 hex."""

from __future__ import annotations

import re
import subprocess
import sys

from federation.ids import new_id


def test_ids_are_32_hex_digits_and_never_repeat() -> None:
    ids = [new_id() for _ in range(10_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_two_processes_make_different_ids() -> None:
    code = "from federation.ids import new_id; print(new_id())"
    first, second = (subprocess.run([sys.executable, "-c", code], capture_output=True,
                                     text=True, check=True).stdout for _ in range(2))
    assert first != second
