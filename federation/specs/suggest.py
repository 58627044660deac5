""""Did you mean ...?" for misspelled names (fields, providers): the closest known names."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """`` (did you mean memory?)`` for the closest known name, or ``""`` when none is close."""
    close = difflib.get_close_matches(str(word), sorted(set(known)), n=1, cutoff=0.6)
    return f", did you mean {close[0]}?" if close else ""
