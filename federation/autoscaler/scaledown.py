"""Scale-down planning as a pure function: which nodes of which pools to release.

A node is released when it has been quiet for its pool's ``scale_down_idle``:

* **empty**: nothing runs there; the executor drains it and terminates it at once;
* **under the threshold** (only with the pool's ``scale_down_utilization``): its
  utilisation, the largest share of its CPU, memory or GPU that allocations hold, stayed
  under that fraction, and a simulated re-placement finds room for each of its services on
  the other nodes of the cluster (free room, constraints, per-node limits), as Kubernetes'
  cluster-autoscaler does. The executor drains it: services move (replacements first),
  batch work finishes in place, and the node is terminated once nothing runs there, which
  this function reports for nodes in ``Occupancy.drained`` when they are empty.

``min_nodes`` is never crossed, nodes the scale-up just gave demand to stay, and the most
expensive nodes go first. Nodes that qualify but whose services cannot move are reported
with the reason, so the activity log says why they stay.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from federation.autoscaler.planner import (
    Constraint,
    Node,
    PoolState,
    Resources,
    ScaleDown,
    node_cost,
)


@dataclass(frozen=True)
class Work:
    """One live allocation on a node, as far as moving it elsewhere is concerned."""

    alloc_id: str
    group: str  # "job/group": copies of one group count against ``max_per_node``
    resources: Resources
    batch: bool = False
    constraints: tuple[Constraint, ...] = ()
    max_per_node: int | None = None  # 1 for ``distinct_hosts``


@dataclass(frozen=True)
class Destination:
    """A ready node that is not draining: where work moved off another node may go."""

    node_id: str
    free: Resources
    attrs: Mapping[str, str | None] = field(default_factory=dict)
    groups: Mapping[str, int] = field(default_factory=dict)  # copies of each group there


@dataclass(frozen=True)
class Occupancy:
    """What the planner's ``Node`` does not carry, for nodes under a utilisation threshold.

    ``destinations`` of None means the standing nodes of the pools given (tests, and a
    cluster made only of pools); the executor passes every ready node of the cluster.
    """

    work: Mapping[str, tuple[Work, ...]] = field(default_factory=dict)  # node id -> work
    under_since: Mapping[str, float] = field(default_factory=dict)  # node id -> since when
    destinations: tuple[Destination, ...] | None = None
    drained: Mapping[str, str] = field(default_factory=dict)  # drained by us -> why


@dataclass(frozen=True)
class Blocked:
    """A node that qualifies for release but stays, and why."""

    pool: str
    node_id: str
    reason: str


@dataclass(frozen=True)
class ScaleDownPlan:
    release: tuple[ScaleDown, ...] = ()
    blocked: tuple[Blocked, ...] = ()


def utilisation(allocated: Resources, capacity: Resources) -> float:
    """The largest share of a node's CPU, memory or GPU that its allocations hold."""
    share = 0.0
    for used, have in (
        (allocated.cpu_milli, capacity.cpu_milli),
        (allocated.memory_mib, capacity.memory_mib),
        (allocated.gpu, capacity.gpu),
    ):
        if used > 0:
            share = max(share, used / have if have > 0 else 1.0)
    return share


def plan_scale_down(
    pools: Sequence[PoolState],
    *,
    now: float,
    keep: Iterable[str] = (),
    occupancy: Occupancy | None = None,
) -> list[ScaleDown]:
    """The nodes to release (see the module docstring); reasons for kept nodes dropped."""
    return list(scale_down(pools, now=now, keep=keep, occupancy=occupancy).release)


def scale_down(
    pools: Sequence[PoolState],
    *,
    now: float,
    keep: Iterable[str] = (),
    occupancy: Occupancy | None = None,
) -> ScaleDownPlan:
    """Nodes to release, most expensive first, and nodes that qualify but must stay."""
    occ = occupancy or Occupancy()
    kept = set(keep)
    room = _Room(
        occ.destinations if occ.destinations is not None else _own_destinations(pools, occ.work)
    )
    for node_id in kept:  # their free room is what the scale-up just gave to demand
        room.remove(node_id)
    # Services still leaving draining nodes will take room elsewhere before anything else.
    for pool in pools:
        for node in pool.nodes:
            if node.draining:
                for item in [w for w in occ.work.get(node.id, ()) if not w.batch]:
                    moves = room.try_place([item])
                    if moves.stuck is None:  # what fits nowhere waits for new capacity
                        room.commit(moves)

    release: list[ScaleDown] = []
    blocked: list[Blocked] = []
    for pool in pools:
        spec = pool.spec
        for node in pool.nodes:
            if node.draining and node.id in occ.drained and node.allocated == Resources():
                cost = node_cost(pool, node)
                release.append(
                    ScaleDown(
                        spec.name, node.id, node.instance_type, cost,
                        f"drained to be released and now empty; saves ${cost:.4f}/h "
                        f"(drained because: {occ.drained[node.id]})",
                    )
                )  # fmt: skip
        standing = [n for n in pool.nodes if not n.draining]
        removable = len(standing) - spec.min_nodes
        if removable <= 0:
            continue
        quiet: list[tuple[Node, float]] = []
        for node in standing:
            since = None if node.id in kept else _quiet_since(node, pool, occ, now)
            if since is not None:
                quiet.append((node, since))
        quiet.sort(key=lambda q: (-node_cost(pool, q[0]), q[1], q[0].id))
        for node, since in quiet:
            if removable <= 0:
                break
            remain = len(standing) - 1
            cost = node_cost(pool, node)
            tail = (
                f"saves ${cost:.4f}/h; {remain} node(s) remain, min_nodes {spec.min_nodes}"
            )
            work = occ.work.get(node.id, ())
            room.remove(node.id)
            if node.allocated == Resources():
                reason = (
                    f"idle for {now - since:.0f}s (pool {spec.name} releases after "
                    f"{spec.scale_down_idle:.0f}s); {tail}"
                )
            else:
                services = [w for w in work if not w.batch]
                moves = room.try_place(services)
                share = utilisation(node.allocated, node.capacity)
                threshold = spec.scale_down_utilization or 0.0
                stuck = moves.stuck
                if stuck is not None:
                    room.restore(node.id)
                    blocked.append(Blocked(spec.name, node.id, (
                        f"node {node.id} stays: its utilisation {share:.0%} is under "
                        f"{threshold:.0%} but {stuck.alloc_id} ({stuck.group}, "
                        f"{stuck.resources.describe()}) fits on no other node"
                    )))  # fmt: skip
                    continue
                room.commit(moves)
                batch = len(work) - len(services)
                reason = (
                    f"utilisation {share:.0%} ({node.allocated.describe()} of "
                    f"{node.capacity.describe()}) under {threshold:.0%} for {now - since:.0f}s "
                    f"(pool {spec.name} releases after {spec.scale_down_idle:.0f}s); "
                    f"{_moves(len(services), moves.targets)}"
                    + (f"; {batch} batch allocation(s) finish here first" if batch else "")
                    + f"; {tail}"
                )
            release.append(ScaleDown(spec.name, node.id, node.instance_type, cost, reason))
            standing = [n for n in standing if n.id != node.id]
            removable -= 1
    return ScaleDownPlan(tuple(release), tuple(blocked))


def _quiet_since(node: Node, pool: PoolState, occ: Occupancy, now: float) -> float | None:
    """Since when ``node`` has qualified for release, if for at least ``scale_down_idle``."""
    spec = pool.spec
    since: float | None = None
    if node.allocated == Resources() and node.idle_since is not None:
        since = node.idle_since
    threshold = spec.scale_down_utilization
    under = occ.under_since.get(node.id)
    if (
        threshold is not None
        and under is not None
        and utilisation(node.allocated, node.capacity) < threshold
    ):
        since = under if since is None else min(since, under)
    if since is None or now - since < spec.scale_down_idle:
        return None
    return since


def _moves(count: int, targets: Sequence[str]) -> str:
    if count == 0:
        return "no service to move"
    return f"{count} service allocation(s) fit on {', '.join(sorted(set(targets)))}"


@dataclass
class _Moves:
    """A simulated re-placement: where each piece went, or the first that fits nowhere."""

    targets: list[str]
    stuck: Work | None
    free: dict[str, Resources]
    groups: dict[str, dict[str, int]]


class _Room:
    """Free room on the destinations, consumed as simulated moves are committed."""

    def __init__(self, destinations: Iterable[Destination]) -> None:
        self._all = {d.node_id: d for d in destinations}
        self._free = {d.node_id: d.free for d in self._all.values()}
        self._groups = {d.node_id: dict(d.groups) for d in self._all.values()}
        self._out: set[str] = set()

    def remove(self, node_id: str) -> None:
        self._out.add(node_id)

    def restore(self, node_id: str) -> None:
        self._out.discard(node_id)

    def try_place(self, work: Sequence[Work]) -> _Moves:
        """Best fit (the node left with the least room), largest piece first."""
        free = dict(self._free)
        groups = {k: dict(v) for k, v in self._groups.items()}
        targets: list[str] = []
        order = sorted(work, key=lambda w: (-w.resources.gpu, -w.resources.cpu_milli,
                                            -w.resources.memory_mib, w.alloc_id))  # fmt: skip
        for item in order:
            best: tuple[tuple[int, int, int, str], str] | None = None
            for node_id, dest in self._all.items():
                if node_id in self._out or not item.resources.fits_in(free[node_id]):
                    continue
                if item.max_per_node is not None and (
                    groups[node_id].get(item.group, 0) >= item.max_per_node
                ):
                    continue
                if not all(c.holds(dest.attrs) for c in item.constraints):
                    continue
                left = free[node_id] - item.resources
                key = (left.gpu, left.cpu_milli, left.memory_mib, node_id)
                if best is None or key < best[0]:
                    best = (key, node_id)
            if best is None:
                return _Moves(targets, item, free, groups)
            target = best[1]
            free[target] = free[target] - item.resources
            groups[target][item.group] = groups[target].get(item.group, 0) + 1
            targets.append(target)
        return _Moves(targets, None, free, groups)

    def commit(self, moves: _Moves) -> None:
        self._free, self._groups = moves.free, moves.groups


def _own_destinations(
    pools: Sequence[PoolState], work: Mapping[str, Sequence[Work]]
) -> list[Destination]:
    """The pools' standing nodes as destinations, with the attributes constraints read."""
    out = []
    for pool in pools:
        spec = pool.spec
        for node in pool.nodes:
            if node.draining:
                continue
            attrs: dict[str, str | None] = {
                "provider": spec.provider, "pool": spec.name, "region": spec.region,
                "zone": node.zone, "rack": node.rack, "instance_type": node.instance_type,
                "node.id": node.id,
            }  # fmt: skip
            attrs.update({f"labels.{k}": v for k, v in node.labels.items()})
            groups: dict[str, int] = {}
            for item in work.get(node.id, ()):
                groups[item.group] = groups.get(item.group, 0) + 1
            out.append(Destination(node.id, node.capacity - node.allocated, attrs, groups))
    return out
