"""Settings of Python's cyclic garbage collector for a server process.

A server holds the whole replicated state in memory: hundreds of thousands of small dicts
(allocations, their views, Raft entries). With the interpreter's default thresholds a burst of
placements triggers full collections that walk all of them while holding the interpreter lock:
about 1 s of collector time per 100,000 placements was measured, in pauses of up to a few
hundred milliseconds during which Raft cannot send heartbeats and the API answers nothing.

State records are acyclic and are freed by reference counting as soon as they are replaced;
the collector only has to find the rare cycles (exceptions with their tracebacks, closures).
So the youngest generation is collected less often, the oldest almost never, and everything
created while the server started (modules, the restored state) is moved out of the
collector's sight.
"""

from __future__ import annotations

import gc

# Allocations (net of frees) between young collections, then young collections per middle
# one and middle ones per full one (the defaults are 700, 10, 10).
THRESHOLDS = (50_000, 20, 100)


def tune_for_server() -> None:
    """Apply :data:`THRESHOLDS` and freeze what exists now (call once the server started).

    Only the young generations are collected first: a full collection walks the restored
    state and every module (0.1-0.2 s with a 20,000-job state, while the server catches up),
    and the few cycles the imports left behind are not worth it."""
    gc.collect(1)
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
