"""Scale-down planning as a pure function: which idle nodes of which pools to release.

The executor drains a chosen node first and terminates it once nothing runs there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from federation.autoscaler.planner import PoolState, Resources, ScaleDown, node_cost


def plan_scale_down(
    pools: Sequence[PoolState], *, now: float, keep: Iterable[str] = ()
) -> list[ScaleDown]:
    """Idle nodes to release: idle for at least the pool's ``scale_down_idle``, never below
    ``min_nodes``, most expensive first. Nodes in ``keep`` (just given demand) stay."""
    kept = set(keep)
    out: list[ScaleDown] = []
    for pool in pools:
        spec = pool.spec
        standing = [n for n in pool.nodes if not n.draining]
        removable = len(standing) - spec.min_nodes
        if removable <= 0:
            continue
        idle = [
            n
            for n in standing
            if n.id not in kept
            and n.idle_since is not None
            and n.allocated == Resources()
            and now - n.idle_since >= spec.scale_down_idle
        ]
        idle.sort(key=lambda n: (-node_cost(pool, n), n.idle_since, n.id))
        for node in idle[:removable]:
            cost = node_cost(pool, node)
            idle_for = now - (node.idle_since or now)
            out.append(
                ScaleDown(
                    pool=spec.name,
                    node_id=node.id,
                    instance_type=node.instance_type,
                    hourly_cost=cost,
                    reason=(
                        f"idle for {idle_for:.0f}s (pool {spec.name} releases after "
                        f"{spec.scale_down_idle:.0f}s); saves ${cost:.4f}/h; "
                        f"{len(standing) - 1} node(s) remain, min_nodes {spec.min_nodes}"
                    ),
                )
            )
            standing = [n for n in standing if n.id != node.id]
    return out
