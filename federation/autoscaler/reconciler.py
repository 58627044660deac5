"""Compares what providers report with what the state committed; pure, no I/O.

Two kinds of drift are found:

* **never joined**: an instance a launch produced whose node never registered, past the
  pool's ``join_grace`` (default 10 minutes) after the launch ended: to be terminated;
* **unknown**: an alive instance carrying the pool's tags that the state does not count as
  running (never recorded, or recorded as terminated): reported when first seen and, past
  the pool's ``orphan_grace`` (default 10 minutes) after that, terminated. Instances whose
  request token belongs to a launch still pending are not unknown: the launch's outcome is
  about to be committed.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass

from federation.autoscaler.observe import (
    DEFAULT_JOIN_GRACE,
    DEFAULT_ORPHAN_GRACE,
    instance_states,
    joined_instance_ids,
    launch_records,
    pool_setting_seconds,
)
from federation.providers.base import Instance
from federation.specs.pool import PoolSpec
from federation.state.machine import StateMachine


@dataclass(frozen=True)
class Drift:
    instance_id: str
    kind: str  # "never_joined" | "unknown"
    reason: str
    terminate: bool
    price_per_hour: float = 0.0


def reconcile(
    machine: StateMachine,
    spec: PoolSpec,
    listed: Iterable[Instance],
    now: float,
    first_seen: MutableMapping[str, float],
) -> list[Drift]:
    """Drift in one pool. ``first_seen`` (instance id -> time) is the caller's memory of
    unknown instances; it is updated here: new unknowns are added, resolved ones dropped."""
    join_grace = pool_setting_seconds(spec, "join_grace", DEFAULT_JOIN_GRACE)
    orphan_grace = pool_setting_seconds(spec, "orphan_grace", DEFAULT_ORPHAN_GRACE)
    states = instance_states(machine, spec.name)
    joined = joined_instance_ids(machine, spec.name)
    out: list[Drift] = []
    for record in launch_records(machine, spec.name):
        if record["status"] == "pending" or record["ended_at"] is None:
            continue
        waited = now - float(record["ended_at"])
        for iid, state in sorted(record["instances"].items()):
            if state != "running" or iid in joined or waited < join_grace:
                continue
            out.append(Drift(
                iid, "never_joined",
                f"instance {iid} ({record['instance_type']}) launched {waited:.0f}s ago never "
                f"joined as a node (pool {spec.name} waits {join_grace:.0f}s)",
                terminate=True, price_per_hour=float(record["price_per_hour"]),
            ))
    pending_tokens = {r["token"] for r in launch_records(machine, spec.name)
                      if r["status"] == "pending"}
    unknown_now: set[str] = set()
    for inst in sorted(listed, key=lambda i: i.id):
        if not inst.alive:
            continue
        known = states.get(inst.id)
        if known is not None and known[0] != "terminated":
            continue
        if inst.request_token is not None and inst.request_token in pending_tokens:
            continue
        unknown_now.add(inst.id)
        seen = first_seen.setdefault(inst.id, now)
        age = now - seen
        what = "recorded as terminated" if known is not None else "unknown to the state"
        out.append(Drift(
            inst.id, "unknown",
            f"instance {inst.id} ({inst.instance_type}) carries pool {spec.name}'s tags but is "
            f"{what}; seen for {age:.0f}s, terminated after {orphan_grace:.0f}s",
            terminate=age >= orphan_grace,
        ))
    for iid in [i for i in first_seen if i not in unknown_now]:
        del first_seen[iid]
    return out
