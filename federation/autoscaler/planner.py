"""Capacity planning as pure functions: pending demand and pools in, decisions with reasons out.

Nothing here does I/O, reads the clock or imports a cloud SDK; the leader's executor feeds it
a snapshot (demand from the scheduler, pools with their catalogs, nodes and open launches)
and commits what it returns before acting.

Scale-up works tier by tier in pool preference order (lower first, so on-prem at 0 is used
before any cloud). Demand first fills free room on existing nodes and on instances already
launching, so the same demand is never bought twice. What is left is bin-packed onto new
instances with a greedy that, at each step, buys the instance whose first-fit-decreasing
packing gives the most demand per dollar, repeating the same packing while the demand
allows. It runs twice, with demand valued at its fractional lower-bound cost and at its
stand-alone cost, and the cheaper plan is kept. A local search then downsizes instances to
the cheapest type that still holds their contents, packs again from scratch what the most
wasteful instances hold, gives up instances whose contents fit in others' free room, and
merges pairs of instances into one cheaper instance. Pool ``max_nodes``, budgets
(``max_price_per_hour``), spot policy, type availability and every task constraint are
honoured throughout.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from federation import model
from federation.model import Constraint, ConstraintCache, fit
from federation.providers.base import InstanceType, select_types
from federation.specs.pool import PoolSpec

_EPS = 1e-9
_MERGE_GROUPS = 48  # distinct bins considered by the merge search
_MERGE_ROUNDS = 400
_REPACK_TRIES = 24  # improving re-packs at most
_REPACK_WIDTH = 8  # most wasteful distinct bins re-packed, alone and together
_EMPTY_PASSES = 3
_TOP_OFFERS = 8  # offers fully evaluated per greedy step, after a cheap fluid ranking


@dataclass(frozen=True)
class Resources:
    cpu_milli: int = 0
    memory_mib: int = 0
    gpu: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.cpu_milli + other.cpu_milli,
            self.memory_mib + other.memory_mib,
            self.gpu + other.gpu,
        )

    def __sub__(self, other: Resources) -> Resources:
        return Resources(
            self.cpu_milli - other.cpu_milli,
            self.memory_mib - other.memory_mib,
            self.gpu - other.gpu,
        )

    def times(self, n: int) -> Resources:
        return Resources(self.cpu_milli * n, self.memory_mib * n, self.gpu * n)

    def fits_in(self, room: Resources) -> bool:
        return (
            self.cpu_milli <= room.cpu_milli
            and self.memory_mib <= room.memory_mib
            and self.gpu <= room.gpu
        )

    def describe(self) -> str:
        text = f"{self.cpu_milli}m CPU, {self.memory_mib} MiB"
        return text + (f", {self.gpu} GPU" if self.gpu else "")


@dataclass(frozen=True)
class Task:
    """Pending demand: ``count`` identical tasks (a task group's unplaced part) or one task.

    ``resources`` is what packing onto new instances counts (a GPU share as a whole device);
    ``ask`` is the exact ask (shares included) and ``max_per_node`` the group's per-node
    limit (1 for ``distinct_hosts``), which the model's fit check applies on existing
    nodes, counting the group's instances already there (``id`` names the group)."""

    id: str
    resources: Resources
    constraints: tuple[Constraint, ...] = ()
    count: int = 1
    ask: model.Resources | None = None
    max_per_node: int | None = None


@dataclass(frozen=True)
class Node:
    """A node of a pool as the state knows it. ``idle_since`` is set while it runs nothing."""

    id: str
    instance_type: str
    capacity: Resources
    allocated: Resources = Resources()
    zone: str | None = None
    rack: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    spot: bool = False
    price_per_hour: float | None = None
    idle_since: float | None = None
    draining: bool = False
    gpu_used_milli: tuple[int, ...] = ()  # per device, when known
    groups: Mapping[str, int] = field(default_factory=dict)  # "job/group" -> live instances


@dataclass(frozen=True)
class Launching:
    """Instances launched (committed) that have not joined as nodes yet."""

    instance_type: str
    count: int
    zone: str | None = None
    spot: bool = False
    token: str = ""


@dataclass(frozen=True)
class PoolState:
    """A pool with what its provider sells and what it already has."""

    spec: PoolSpec
    catalog: tuple[InstanceType, ...]
    nodes: tuple[Node, ...] = ()
    launching: tuple[Launching, ...] = ()


@dataclass(frozen=True)
class ScaleUp:
    pool: str
    provider: str
    instance_type: str
    count: int
    spot: bool
    zones: tuple[str, ...]
    price_per_hour: float
    hourly_cost: float
    reason: str
    task_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScaleDown:
    pool: str
    node_id: str
    instance_type: str
    hourly_cost: float
    reason: str


@dataclass(frozen=True)
class Unplaceable:
    task_id: str
    count: int
    reason: str


@dataclass(frozen=True)
class Plan:
    scale_up: tuple[ScaleUp, ...] = ()
    scale_down: tuple[ScaleDown, ...] = ()
    unplaceable: tuple[Unplaceable, ...] = ()
    covered: tuple[str, ...] = ()  # task ids that fit on existing or launching capacity

    @property
    def hourly_cost(self) -> float:
        """What the scale-ups add per hour."""
        return sum(d.hourly_cost for d in self.scale_up)

    @property
    def hourly_savings(self) -> float:
        return sum(d.hourly_cost for d in self.scale_down)


# --------------------------------------------------------------------------------------
# internal model


@dataclass
class _Group:
    """Identical tasks, possibly from several demand entries."""

    resources: Resources
    constraints: tuple[Constraint, ...]
    ids: list[tuple[str, int]]  # (task id, how many of it)
    count: int
    size: float = 0.0  # normalised, for first-fit-decreasing ordering
    ask: model.Resources | None = None  # the exact ask, for the fit check on existing nodes
    cap: int | None = None  # instances one node may hold (distinct_hosts, max_per_node)
    name: str = ""  # the job/group a capped group counts on a node

    def take(self, n: int) -> list[str]:
        """Consume ``n`` tasks, returning their ids (repeated ids for counted tasks)."""
        out: list[str] = []
        while n > 0 and self.ids:
            task_id, have = self.ids[0]
            used = min(have, n)
            out.append(task_id)
            n -= used
            if used == have:
                self.ids.pop(0)
            else:
                self.ids[0] = (task_id, have - used)
        return out


@dataclass
class _Offer:
    pool: int
    itype: InstanceType
    spot: bool
    price: float
    zones: tuple[str, ...]
    capacity: Resources
    attrs: dict[str, str | None]


@dataclass
class _PoolBudget:
    nodes_left: int
    money_left: float
    avail: dict[str, int]  # instance type -> how many can still be had (absent: unlimited)

    def can_add(self, offer: _Offer, n: int = 1) -> bool:
        if n > self.nodes_left or offer.price * n > self.money_left + _EPS:
            return False
        left = self.avail.get(offer.itype.name)
        return left is None or n <= left

    def most(self, offer: _Offer) -> int:
        n = self.nodes_left
        if offer.price > 0 and math.isfinite(self.money_left):
            n = min(n, int((self.money_left + _EPS) // offer.price))
        left = self.avail.get(offer.itype.name)
        return min(n, left) if left is not None else n

    def add(self, offer: _Offer, n: int) -> None:
        self.nodes_left -= n
        self.money_left -= offer.price * n
        if offer.itype.name in self.avail:
            self.avail[offer.itype.name] -= n


@dataclass
class _Bin:
    offer: int
    zone: str | None
    contents: dict[int, int]  # group index -> tasks
    mult: int = 1

    def used(self, groups: Sequence[_Group]) -> Resources:
        total = Resources()
        for g, n in self.contents.items():
            total = total + groups[g].resources.times(n)
        return total


_ANY = None  # "every zone of the offer" in an allowed-zone answer


def _pool_attrs(spec: PoolSpec) -> dict[str, str | None]:
    attrs: dict[str, str | None] = {
        "provider": spec.provider,
        "pool": spec.name,
        "region": spec.region,
    }
    for key, value in spec.labels.items():
        attrs[f"labels.{key}"] = value
    return attrs


def _market(spec: PoolSpec, itype: InstanceType) -> tuple[bool, float] | None:
    if spec.spot == "never":
        return False, itype.price_per_hour
    if itype.spot_price_per_hour is not None:
        return True, itype.spot_price_per_hour
    if spec.spot == "only":
        return None
    return False, itype.price_per_hour


def _build_offers(pools: Sequence[PoolState]) -> list[_Offer]:
    offers: list[_Offer] = []
    for p, pool in enumerate(pools):
        base = _pool_attrs(pool.spec)
        for itype in select_types(pool.spec, pool.catalog):
            market = _market(pool.spec, itype)
            if market is None:
                continue
            if pool.spec.zones and itype.zones:
                zones = tuple(z for z in pool.spec.zones if z in itype.zones)
                if not zones:
                    continue
            else:
                zones = tuple(pool.spec.zones or itype.zones)
            attrs = dict(base)
            attrs["instance_type"] = itype.name
            offers.append(
                _Offer(
                    pool=p,
                    itype=itype,
                    spot=market[0],
                    price=market[1],
                    zones=zones,
                    capacity=Resources(itype.cpu_milli, itype.memory_mib, itype.gpu),
                    attrs=attrs,
                )
            )
    return offers


def _allowed_zones(
    constraints: tuple[Constraint, ...], offer: _Offer
) -> frozenset[str] | None | bool:
    """False: never on this offer; None: any of its zones; a set: only those zones."""
    others = [c for c in constraints if c.attribute != "zone"]
    if not all(c.holds(offer.attrs) for c in others):
        return False
    on_zone = [c for c in constraints if c.attribute == "zone"]
    if not on_zone:
        return _ANY
    if not offer.zones:
        attrs = dict(offer.attrs, zone=None)
        return _ANY if all(c.holds(attrs) for c in on_zone) else False
    ok = frozenset(
        z for z in offer.zones if all(c.holds(dict(offer.attrs, zone=z)) for c in on_zone)
    )
    if not ok:
        return False
    return _ANY if len(ok) == len(offer.zones) else ok


def _exact_ask(task: Task) -> model.Resources:
    if task.ask is not None:
        return task.ask
    r = task.resources
    return model.Resources(r.cpu_milli, r.memory_mib, r.gpu)


def _group_demand(demand: Iterable[Task]) -> list[_Group]:
    by_key: dict[tuple[object, ...], _Group] = {}
    for task in demand:
        if task.count <= 0:
            continue
        # A group with a per-node limit counts its own instances per node: never merged.
        limited = task.id if task.max_per_node is not None else None
        key = (task.resources, _exact_ask(task), task.constraints, limited)
        group = by_key.get(key)
        if group is None:
            group = _Group(task.resources, task.constraints, [], 0, ask=_exact_ask(task),
                           cap=task.max_per_node, name=task.id)
            by_key[key] = group
        group.ids.append((task.id, task.count))
        group.count += task.count
    return list(by_key.values())


def _merge(a: Mapping[int, int], b: Mapping[int, int]) -> dict[int, int]:
    out = dict(a)
    for g, n in b.items():
        out[g] = out.get(g, 0) + n
    return out


def _share(res: Resources, cap: Resources) -> float:
    """The fraction of an instance a demand takes on its most used dimension."""
    share = 0.0
    for need, have in (
        (res.cpu_milli, cap.cpu_milli),
        (res.memory_mib, cap.memory_mib),
        (res.gpu, cap.gpu),
    ):
        if need > 0:
            share = max(share, need / have) if have > 0 else math.inf
    return share


def _fit(res: Resources, cap: Resources, most: int) -> int:
    """How many tasks of ``res`` fit on ``cap`` at once, at most ``most``."""
    for need, have in (
        (res.cpu_milli, cap.cpu_milli),
        (res.memory_mib, cap.memory_mib),
        (res.gpu, cap.gpu),
    ):
        if need > 0:
            most = min(most, have // need)
    return most


def node_cost(pool: PoolState, node: Node) -> float:
    if node.price_per_hour is not None:
        return node.price_per_hour
    for itype in pool.catalog:
        if itype.name == node.instance_type:
            price = itype.price(node.spot)
            return price if price is not None else itype.price_per_hour
    return 0.0


def _node_view(spec: PoolSpec, node: Node) -> model.NodeView:
    """The model's view of an existing node, with the attributes constraints read."""
    gpus = node.capacity.gpu
    used = node.gpu_used_milli
    if len(used) != gpus:  # per-device use unknown: the busy devices are taken whole
        busy = min(node.allocated.gpu, gpus)
        used = (model.MILLI_PER_GPU,) * busy + (0,) * (gpus - busy)
    return model.NodeView(
        id=node.id,
        capacity=model.Resources(node.capacity.cpu_milli, node.capacity.memory_mib, gpus),
        allocated=model.Resources(max(0, node.allocated.cpu_milli),
                                  max(0, node.allocated.memory_mib)),
        gpu_used_milli=tuple(used) if gpus else (),
        provider=spec.provider, pool=spec.name, region=spec.region or "",
        zone=node.zone or "", rack=node.rack or "", instance_type=node.instance_type,
        labels={**spec.labels, **node.labels})


def _launch_cost(pool: PoolState, launch: Launching) -> float:
    for itype in pool.catalog:
        if itype.name == launch.instance_type:
            price = itype.price(launch.spot)
            return (price if price is not None else itype.price_per_hour) * launch.count
    return 0.0


# --------------------------------------------------------------------------------------
# scale-up


class _ScaleUpPlanner:
    def __init__(self, demand: Sequence[Task], pools: Sequence[PoolState]) -> None:
        self.pools = pools
        self.groups = _group_demand(demand)
        self.offers = _build_offers(pools)
        self.covered: list[str] = []
        self.busy_nodes: set[str] = set()
        cpu_ref = max([o.capacity.cpu_milli for o in self.offers] + [1])
        mem_ref = max([o.capacity.memory_mib for o in self.offers] + [1])
        gpu_ref = max([o.capacity.gpu for o in self.offers] + [1])
        for g in self.groups:
            r = g.resources
            g.size = r.cpu_milli / cpu_ref + r.memory_mib / mem_ref + r.gpu / gpu_ref
        # feasibility: group -> offer -> allowed zones (None: any)
        cache: dict[tuple[tuple[Constraint, ...], int], frozenset[str] | None | bool] = {}
        self.feasible: list[dict[int, frozenset[str] | None]] = []
        for g in self.groups:
            row: dict[int, frozenset[str] | None] = {}
            for o, offer in enumerate(self.offers):
                if not g.resources.fits_in(offer.capacity):
                    continue
                key = (g.constraints, o)
                if key not in cache:
                    cache[key] = _allowed_zones(g.constraints, offer)
                allowed = cache[key]
                if allowed is not False:
                    row[o] = allowed  # type: ignore[assignment]
            self.feasible.append(row)
        self.budgets = [self._budget(pool) for pool in pools]
        self._value: dict[int, float] = {}

    def _budget(self, pool: PoolState) -> _PoolBudget:
        spec = pool.spec
        have = sum(1 for n in pool.nodes) + sum(lc.count for lc in pool.launching)
        spent = sum(node_cost(pool, n) for n in pool.nodes)
        spent += sum(_launch_cost(pool, lc) for lc in pool.launching)
        money = math.inf if spec.max_price_per_hour is None else spec.max_price_per_hour - spent
        avail = {t.name: t.available for t in pool.catalog if t.available is not None}
        return _PoolBudget(max(0, spec.max_nodes - have), money, avail)

    # -- existing capacity -------------------------------------------------------------

    def absorb_existing(self) -> None:
        """Fit demand onto free room of existing nodes and launching instances first.

        On an existing node this is the model's fit check, the scheduler's own: exact asks
        (GPU shares per device), constraints and per-node limits counting the group's
        instances already there, so what is counted as covered is what the scheduler can
        place, and a group the scheduler cannot place is bought for."""
        order = sorted(range(len(self.groups)), key=lambda i: -self.groups[i].size)
        caches = [ConstraintCache(g.constraints) for g in self.groups]
        for pool in sorted(self.pools, key=lambda p: (p.spec.preference, p.spec.name)):
            for node in pool.nodes:
                if not node.draining:
                    self._absorb_on_node(pool.spec, node, order, caches)
            base = _pool_attrs(pool.spec)
            shapes = {t.name: t for t in pool.catalog}
            for launch in pool.launching:
                itype = shapes.get(launch.instance_type)
                if itype is None:
                    continue
                attrs = dict(base, instance_type=itype.name, zone=launch.zone)
                room = Resources(itype.cpu_milli, itype.memory_mib, itype.gpu)
                for _ in range(launch.count):
                    self._absorb_on_launching(attrs, room, order)

    def _absorb_on_node(self, spec: PoolSpec, node: Node, order: list[int],
                        caches: list[ConstraintCache]) -> None:
        view = _node_view(spec, node)
        usage = model.Usage()
        for gi in order:
            group = self.groups[gi]
            ask = group.ask or model.Resources(group.resources.cpu_milli,
                                               group.resources.memory_mib, group.resources.gpu)
            n = 0
            while group.count > n:
                here = node.groups.get(group.name, 0) + n
                if fit.rejection(view, ask, usage, caches[gi], group.cap, here,
                                 explain=False) is not None:
                    break
                usage.add(view, group.name, "", ask, fit.pick_devices(view, ask, usage))
                n += 1
            if n:
                group.count -= n
                self.covered.extend(group.take(n))
                self.busy_nodes.add(node.id)

    def _absorb_on_launching(self, attrs: dict[str, str | None], room: Resources,
                             order: list[int]) -> None:
        free = room
        for gi in order:
            group = self.groups[gi]
            if group.count == 0 or not group.resources.fits_in(free):
                continue
            if not all(c.holds(attrs) for c in group.constraints):
                continue
            n = _fit(group.resources, free, group.count)
            if group.cap is not None:
                n = min(n, group.cap)
            if n <= 0:
                continue
            free = free - group.resources.times(n)
            group.count -= n
            self.covered.extend(group.take(n))

    # -- new capacity --------------------------------------------------------------------

    def _pack_one(
        self,
        offer_i: int,
        zone: str | None,
        orders: list[list[int]],
        counts: Mapping[int, int],
    ) -> dict[int, int]:
        """First-fit-decreasing of the remaining demand into one fresh instance.

        Tried in three orders (overall size, CPU first, memory first), keeping the packing
        worth most: one order alone strands room on the other dimension too often.
        """
        best: dict[int, int] = {}
        best_key = (-1.0, -1.0)
        for order in orders:
            contents = self._pack_order(offer_i, zone, order, counts)
            key = (
                sum(self._value[g] * n for g, n in contents.items()),
                sum(self.groups[g].size * n for g, n in contents.items()),
            )
            if key > best_key:
                best, best_key = contents, key
        return best

    def _orders(self, active: list[int]) -> list[list[int]]:
        by_cpu = sorted(
            active, key=lambda i: (-self.groups[i].resources.cpu_milli, -self.groups[i].size)
        )
        by_mem = sorted(
            active, key=lambda i: (-self.groups[i].resources.memory_mib, -self.groups[i].size)
        )
        return [active, by_cpu, by_mem]

    def _pack_order(
        self, offer_i: int, zone: str | None, order: list[int], counts: Mapping[int, int]
    ) -> dict[int, int]:
        free = self.offers[offer_i].capacity
        contents: dict[int, int] = {}
        for gi in order:
            n = counts.get(gi, 0)
            if n <= 0:
                continue
            allowed = self.feasible[gi].get(offer_i, False)
            if allowed is False:
                continue
            if allowed is not _ANY and (zone is None or zone not in allowed):  # type: ignore[operator]
                continue
            r = self.groups[gi].resources
            for need, have in (
                (r.cpu_milli, free.cpu_milli),
                (r.memory_mib, free.memory_mib),
                (r.gpu, free.gpu),
            ):
                if need > 0:
                    n = min(n, have // need)
            if self.groups[gi].cap is not None:
                n = min(n, self.groups[gi].cap)
            if n <= 0:
                continue
            contents[gi] = n
            free = free - r.times(n)
        return contents

    def _simulate(
        self, offer_i: int, zone: str | None, live: list[int]
    ) -> tuple[list[tuple[dict[int, int], int]], float, float]:
        """Serve all the demand this offer can take with instances of it alone.

        Returns the instances as (contents, repetitions), the demand's value and its size.
        """
        offer = self.offers[offer_i]
        left = self.budgets[offer.pool].most(offer)
        counts = {gi: self.groups[gi].count for gi in live}
        out: list[tuple[dict[int, int], int]] = []
        value = size = 0.0
        orders = self._orders([gi for gi in live if offer_i in self.feasible[gi]])
        for _ in range(len(live) * 4 + 8):  # each round exhausts a group or the budget
            if left <= 0:
                break
            contents = self._pack_one(offer_i, zone, orders, counts)
            if not contents:
                break
            reps = min(left, min(counts[g] // n for g, n in contents.items()))
            reps = max(1, reps)
            for g, n in contents.items():
                counts[g] -= n * reps
                value += self._value[g] * n * reps
                size += self.groups[g].size * n * reps
            left -= reps
            out.append((contents, reps))
        return out, value, size

    def _zone_options(self, offer_i: int, active: list[int]) -> list[str | None]:
        options: list[str | None] = [None]
        seen: set[str] = set()
        for gi in active:
            allowed = self.feasible[gi].get(offer_i, False)
            if allowed is False or allowed is _ANY or self.groups[gi].count == 0:
                continue
            for z in sorted(allowed):  # type: ignore[arg-type]
                if z not in seen:
                    seen.add(z)
                    options.append(z)
        return options

    def plan_tier(self, tier: list[int]) -> list[_Bin]:
        """Buy for the demand this tier's offers can take: one greedy pass (and local
        search) per way of valuing demand, keeping the plan that places most, then costs
        least."""
        tier_offers = [o for o, off in enumerate(self.offers) if off.pool in tier]
        if not tier_offers:
            return []
        tier_set = set(tier_offers)
        active = [
            gi
            for gi in range(len(self.groups))
            if self.groups[gi].count > 0 and tier_set & self.feasible[gi].keys()
        ]
        active.sort(key=lambda i: -self.groups[i].size)
        start = self._save()
        best: tuple[tuple[int, float], list[_Bin], Any] | None = None
        for values in self._valuations(tier_offers, active):
            self._restore(start)
            bins = self._improve(self._greedy(tier_offers, active, values), tier_offers)
            left = sum(self.groups[gi].count for gi in active)
            cost = sum(self.offers[b.offer].price * b.mult for b in bins)
            key = (left, round(cost, 9))
            if best is None or key < best[0]:
                best = (key, bins, self._save())
        if best is None:
            return []
        self._restore(best[2])
        return best[1]

    def _valuations(self, tier_offers: list[int], active: list[int]) -> list[dict[int, float]]:
        """Ways to value a task when choosing what to buy.

        ``share``: its fractional lower-bound cost, the cheapest price times the share of an
        instance it takes on its most used dimension; it favours instances that a single
        shape fills well. ``alone``: what its shape costs per task when bought on its own
        (the cheapest type's price over how many of it fit, at most the group's count); it
        favours instances that hold what packs badly alone, such as a small GPU task with a
        CPU-heavy one on a GPU type. Neither wins everywhere.
        """
        share: dict[int, float] = {}
        alone: dict[int, float] = {}
        for gi in active:
            group = self.groups[gi]
            r = group.resources
            share[gi] = alone[gi] = math.inf
            for o in tier_offers:
                if o not in self.feasible[gi]:
                    continue
                offer = self.offers[o]
                share[gi] = min(share[gi], offer.price * _share(r, offer.capacity))
                alone[gi] = min(
                    alone[gi], offer.price / max(1, _fit(r, offer.capacity,
                                                         min(group.count, group.cap or
                                                             group.count)))
                )
        return [share, alone] if alone != share else [share]

    def _save(self) -> tuple[list[int], list[_PoolBudget]]:
        budgets = [_PoolBudget(b.nodes_left, b.money_left, dict(b.avail)) for b in self.budgets]
        return [g.count for g in self.groups], budgets

    def _restore(self, saved: tuple[list[int], list[_PoolBudget]]) -> None:
        counts, budgets = saved
        for group, count in zip(self.groups, counts, strict=True):
            group.count = count
        self.budgets = [_PoolBudget(b.nodes_left, b.money_left, dict(b.avail)) for b in budgets]

    def _greedy(
        self, tier_offers: list[int], active: list[int], values: dict[int, float]
    ) -> list[_Bin]:
        self._value = values
        bins: list[_Bin] = []
        for _ in range(len(tier_offers) * (len(active) + 1) + 1):  # each round buys something
            live = [gi for gi in active if self.groups[gi].count > 0]
            if not live:
                break
            best = self._best_candidate(tier_offers, live, values)
            if best is None:
                break
            offer_i, zone, chosen = best
            offer = self.offers[offer_i]
            for contents, reps in chosen:
                self.budgets[offer.pool].add(offer, reps)
                for g, n in contents.items():
                    self.groups[g].count -= n * reps
                bins.append(_Bin(offer_i, zone, contents, reps))
        return bins

    def _best_candidate(
        self, tier_offers: list[int], live: list[int], lower: dict[int, float]
    ) -> tuple[int, str | None, list[tuple[dict[int, int], int]]] | None:
        """The offer that serves the demand it can take at the lowest cost per value.

        A cheap fluid estimate ranks the offers first, so only a few are simulated in full.
        """
        ranked: list[tuple[float, int]] = []
        for o in tier_offers:
            offer = self.offers[o]
            if not self.budgets[offer.pool].can_add(offer):
                continue
            value = 0.0
            need = Resources()
            for gi in live:
                if o in self.feasible[gi]:
                    group = self.groups[gi]
                    value += lower[gi] * group.count
                    need = need + group.resources.times(group.count)
            if need == Resources():
                continue
            if offer.price <= 0:
                ranked.append((-math.inf, o))
                continue
            cost = offer.price * max(_share(need, offer.capacity), 1.0)
            ranked.append((-value / cost, o))
        ranked.sort()
        best: tuple[tuple[float, float, float, str], int, str | None, list[Any]] | None = None
        for _, o in ranked[:_TOP_OFFERS]:
            offer = self.offers[o]
            for zone in self._zone_options(o, live):
                chosen, value, size = self._simulate(o, zone, live)
                if not chosen:
                    continue
                cost = offer.price * sum(reps for _, reps in chosen)
                score = value / cost if cost > 0 else math.inf
                key = (-score, -size, offer.price, offer.itype.name)
                if best is None or key < best[0]:
                    best = (key, o, zone, chosen)
        if best is None:
            return None
        return best[1], best[2], best[3]

    def _admits(self, offer_i: int, zone: str | None, contents: Mapping[int, int]) -> bool:
        for g, n in contents.items():
            cap = self.groups[g].cap
            if cap is not None and n > cap:
                return False
            allowed = self.feasible[g].get(offer_i, False)
            if allowed is False:
                return False
            if allowed is not _ANY and (zone is None or zone not in allowed):  # type: ignore[operator]
                return False
        return True

    def _copies_admitted(self, into: Mapping[int, int], copy: Mapping[int, int]) -> int:
        """How many copies of ``copy`` a bin holding ``into`` may take within per-node
        limits (unbounded: a large number)."""
        most = 1 << 30
        for g, n in copy.items():
            cap = self.groups[g].cap
            if cap is not None and n > 0:
                most = min(most, (cap - into.get(g, 0)) // n)
        return most

    def _cheapest_holder(
        self,
        by_price: list[int],
        contents: Mapping[int, int],
        zone: str | None,
        below: float = math.inf,
    ) -> tuple[int, str | None] | None:
        """The cheapest offer (and zone) with budget left that holds ``contents`` at once,
        among offers cheaper than ``below``. ``by_price`` lists offers by ascending price,
        so the first that fits is the answer and the scan stops at ``below``."""
        return self._holder(by_price, contents, zone, below, budget=True)

    def _holder(
        self,
        by_price: list[int],
        contents: Mapping[int, int],
        zone: str | None,
        below: float = math.inf,
        budget: bool = False,
    ) -> tuple[int, str | None] | None:
        """As ``_cheapest_holder``, with the budget checked only when ``budget`` is set."""
        used = Resources()
        for g, n in contents.items():
            used = used + self.groups[g].resources.times(n)
        for o in by_price:
            offer = self.offers[o]
            if offer.price >= below - _EPS:
                return None
            if not used.fits_in(offer.capacity):
                continue
            if budget and not self.budgets[offer.pool].can_add(offer):
                continue
            zones: list[str | None] = [zone] if zone is not None else [None, *offer.zones]
            for z in zones:
                if self._admits(o, z, contents):
                    return o, z
        return None

    def _improve(self, bins: list[_Bin], tier_offers: list[int]) -> list[_Bin]:
        by_price = sorted(tier_offers, key=lambda o: self.offers[o].price)  # stable on ties
        self._downsize(bins, by_price)
        bins = self._repack(bins, tier_offers, by_price)
        bins = self._empty_into_slack(bins)
        # merge: two instances into one cheaper instance, best improvement first. A bin's
        # contents, zone and type stay fixed from here on, so what holds a pair is cached
        # by the pair; only the budget, which merges change, is checked again.
        holds: dict[tuple[int, int], tuple[int, str | None] | None] = {}
        for _ in range(_MERGE_ROUNDS):
            live = [b for b in bins if b.mult > 0]
            live.sort(key=self._fill)
            live = live[:_MERGE_GROUPS]
            best: tuple[float, _Bin, _Bin, int, str | None] | None = None
            for i, a in enumerate(live):
                for b in live[i:]:
                    if a is b and a.mult < 2:
                        continue
                    if a.zone is not None and b.zone is not None and a.zone != b.zone:
                        continue
                    pa, pb = self.offers[a.offer], self.offers[b.offer]
                    pair = (id(a), id(b))
                    if pair not in holds:
                        holds[pair] = self._holder(
                            by_price,
                            _merge(a.contents, b.contents),
                            a.zone if a.zone is not None else b.zone,
                            below=pa.price + pb.price,
                        )
                    found = holds[pair]
                    if found is None:
                        continue
                    self.budgets[pa.pool].add(pa, -1)
                    self.budgets[pb.pool].add(pb, -1)
                    if not self.budgets[self.offers[found[0]].pool].can_add(self.offers[found[0]]):
                        found = self._cheapest_holder(
                            by_price,
                            _merge(a.contents, b.contents),
                            a.zone if a.zone is not None else b.zone,
                            below=pa.price + pb.price,
                        )
                    self.budgets[pa.pool].add(pa, 1)
                    self.budgets[pb.pool].add(pb, 1)
                    if found is None:
                        continue
                    gain = pa.price + pb.price - self.offers[found[0]].price
                    if gain > _EPS and (best is None or gain > best[0] + _EPS):
                        best = (gain, a, b, found[0], found[1])
            if best is None:
                break
            _, a, b, o, zone = best
            pa, pb, new = self.offers[a.offer], self.offers[b.offer], self.offers[o]
            self.budgets[pa.pool].add(pa, -1)
            self.budgets[pb.pool].add(pb, -1)
            self.budgets[new.pool].add(new, 1)
            a.mult -= 1
            b.mult -= 1
            bins.append(_Bin(o, zone, _merge(a.contents, b.contents), 1))
        return [b for b in bins if b.mult > 0]

    def _downsize(self, bins: list[_Bin], by_price: list[int]) -> None:
        """Move each distinct bin to the cheapest type that still holds its contents."""
        for b in bins:
            old = self.offers[b.offer]
            self.budgets[old.pool].add(old, -b.mult)
            found = self._cheapest_holder(by_price, b.contents, b.zone, below=old.price)
            if found is not None:
                new = self.offers[found[0]]
                if new.price < old.price - _EPS and self.budgets[new.pool].can_add(new, b.mult):
                    b.offer, b.zone = found
            self.budgets[self.offers[b.offer].pool].add(self.offers[b.offer], b.mult)

    def _repack(self, bins: list[_Bin], tier_offers: list[int], by_price: list[int]) -> list[_Bin]:
        """Buy again, from scratch, for what the most wasteful instances hold.

        Waste is an instance's price less the value of what it holds. The greedy commits a
        whole run of one type at a time, and the tail of such a run can be poor (CPU-only
        tasks left on a GPU type once the GPU tasks ran out); planning those contents alone,
        and with other wasteful bins' contents, finds what suits them. A new packing is kept
        only when it places everything for less.
        """
        tried: set[tuple[int, ...]] = set()
        for _ in range(_REPACK_TRIES):
            live = [b for b in bins if b.mult > 0 and self._waste(b) > _EPS]
            live.sort(key=lambda b: -self._waste(b) * b.mult)
            live = live[:_REPACK_WIDTH]
            subsets = [[b] for b in live] + [live[:k] for k in (2, 4, len(live)) if k <= len(live)]
            improved = False
            for subset in subsets:
                key = tuple(sorted(id(b) for b in subset))
                if key in tried:
                    continue
                tried.add(key)
                new_bins = self._replan(subset, tier_offers, by_price)
                if new_bins is not None:
                    for b in subset:
                        b.mult = 0
                    bins = [b for b in bins if b.mult > 0] + new_bins
                    improved = True
                    break
            if not improved:
                break
        return bins

    def _empty_into_slack(self, bins: list[_Bin]) -> list[_Bin]:
        """Give up instances whose whole contents fit in the free room of others.

        Donors are tried most expensive first; a receiver takes as many donor instances'
        contents per copy as its free room holds (best fit: the receiver left with the
        least room), and is split when only some of its copies receive.
        """
        free_of: dict[int, Resources] = {}  # contents never change, so neither does room

        def free(b: _Bin) -> Resources:
            if id(b) not in free_of:
                free_of[id(b)] = self.offers[b.offer].capacity - b.used(self.groups)
            return free_of[id(b)]

        for _ in range(_EMPTY_PASSES):
            moved = False
            donors = [b for b in bins if b.mult > 0 and b.contents]
            donors.sort(key=lambda b: -self.offers[b.offer].price)
            for donor in donors:
                need = donor.used(self.groups)
                while donor.mult > 0:
                    best: tuple[float, _Bin, int] | None = None
                    for r in bins:
                        if r is donor or r.mult <= 0:
                            continue
                        room = free(r)
                        if not need.fits_in(room):
                            continue
                        k = _fit(need, room, donor.mult)
                        k = min(k, self._copies_admitted(r.contents, donor.contents))
                        if k <= 0 or not self._admits(r.offer, r.zone, donor.contents):
                            continue
                        left = _share(room - need.times(k), self.offers[r.offer].capacity)
                        if best is None or left < best[0]:
                            best = (left, r, k)
                    if best is None:
                        break
                    _, r, k = best
                    n = min(donor.mult, r.mult * k)
                    full, rest = divmod(n, k)
                    if full:
                        scaled = {g: c * k for g, c in donor.contents.items()}
                        bins.append(_Bin(r.offer, r.zone, _merge(r.contents, scaled), full))
                    if rest:
                        scaled = {g: c * rest for g, c in donor.contents.items()}
                        bins.append(_Bin(r.offer, r.zone, _merge(r.contents, scaled), 1))
                    r.mult -= full + (1 if rest else 0)
                    donor.mult -= n
                    offer = self.offers[donor.offer]
                    self.budgets[offer.pool].add(offer, -n)
                    moved = True
            bins = [b for b in bins if b.mult > 0]
            if not moved:
                break
        return bins

    def _waste(self, b: _Bin) -> float:
        worth = sum(self._value[g] * n for g, n in b.contents.items())
        return self.offers[b.offer].price - worth

    def _replan(
        self, subset: list[_Bin], tier_offers: list[int], by_price: list[int]
    ) -> list[_Bin] | None:
        """A cheaper packing of ``subset``'s contents, or None (state left unchanged)."""
        saved = self._save()
        union: dict[int, int] = {}
        for b in subset:
            for g, n in b.contents.items():
                union[g] = union.get(g, 0) + n * b.mult
            self.budgets[self.offers[b.offer].pool].add(self.offers[b.offer], -b.mult)
        for gi, group in enumerate(self.groups):
            group.count = union.get(gi, 0)
        active = sorted(union, key=lambda gi: -self.groups[gi].size)
        new_bins = self._greedy(tier_offers, active, self._value)
        self._downsize(new_bins, by_price)
        placed = all(self.groups[gi].count == 0 for gi in union)
        old_cost = sum(self.offers[b.offer].price * b.mult for b in subset)
        new_cost = sum(self.offers[b.offer].price * b.mult for b in new_bins)
        if placed and new_cost < old_cost - _EPS:
            for group, count in zip(self.groups, saved[0], strict=True):
                group.count = count
            return new_bins
        self._restore(saved)
        return None

    def _fill(self, b: _Bin) -> float:
        return _share(b.used(self.groups), self.offers[b.offer].capacity)

    def min_nodes(self, bought: Sequence[_Bin] = ()) -> list[_Bin]:
        """Instances bought only to bring pools up to ``min_nodes``, counting what the
        demand already buys (``bought``)."""
        out: list[_Bin] = []
        for p, pool in enumerate(self.pools):
            have = len(pool.nodes) + sum(lc.count for lc in pool.launching)
            have += sum(b.mult for b in bought if self.offers[b.offer].pool == p)
            missing = pool.spec.min_nodes - have
            if missing <= 0:
                continue
            candidates = [o for o, off in enumerate(self.offers) if off.pool == p]
            candidates.sort(
                key=lambda o: (
                    self.offers[o].price,
                    self.offers[o].capacity.cpu_milli,
                    self.offers[o].itype.name,
                )
            )
            for o in candidates:
                if missing <= 0:
                    break
                n = min(missing, self.budgets[p].most(self.offers[o]))
                if n <= 0:
                    continue
                self.budgets[p].add(self.offers[o], n)
                out.append(_Bin(o, None, {}, n))
                missing -= n
        return out


def _decisions(planner: _ScaleUpPlanner, bins: list[_Bin], min_bins: list[_Bin]) -> list[ScaleUp]:
    merged: dict[tuple[int, str | None, bool], list[_Bin]] = {}
    for b in bins:
        merged.setdefault((b.offer, b.zone, bool(b.contents)), []).append(b)
    for b in min_bins:
        merged.setdefault((b.offer, b.zone, False), []).append(b)
    out: list[ScaleUp] = []
    for (o, zone, for_demand), group_bins in merged.items():
        offer = planner.offers[o]
        spec = planner.pools[offer.pool].spec
        count = sum(b.mult for b in group_bins)
        market = "spot" if offer.spot else "on-demand"
        each = f"${offer.price:.4f}/h each" if offer.price else "no marginal cost"
        zones = (zone,) if zone is not None else offer.zones
        where = f" in {zone}" if zone is not None else ""
        if for_demand:
            tasks = 0
            used = Resources()
            ids: list[str] = []
            for b in group_bins:
                for g, n in b.contents.items():
                    tasks += n * b.mult
                    used = used + planner.groups[g].resources.times(n * b.mult)
                    ids.extend(planner.groups[g].take(n * b.mult))
            reason = (
                f"{tasks} pending task(s) needing {used.describe()} fit on {count} x "
                f"{offer.itype.name} ({market}, {each}){where}: the cheapest packing found in "
                f"pool {spec.name} (preference {spec.preference})"
            )
        else:
            ids = []
            have = len(planner.pools[offer.pool].nodes)
            have += sum(lc.count for lc in planner.pools[offer.pool].launching)
            reason = (
                f"pool {spec.name} has {have} node(s), below min_nodes {spec.min_nodes}: "
                f"{count} x {offer.itype.name} ({market}, {each}), its cheapest type"
            )
        out.append(
            ScaleUp(
                pool=spec.name,
                provider=spec.provider,
                instance_type=offer.itype.name,
                count=count,
                spot=offer.spot,
                zones=tuple(zones),
                price_per_hour=offer.price,
                hourly_cost=round(offer.price * count, 6),
                reason=reason,
                task_ids=tuple(ids),
            )
        )
    out.sort(key=lambda d: (d.pool, d.instance_type, d.zones))
    return out


def _unplaceable(planner: _ScaleUpPlanner) -> list[Unplaceable]:
    out: list[Unplaceable] = []
    for gi, group in enumerate(planner.groups):
        if group.count <= 0:
            continue
        if not any(group.resources.fits_in(o.capacity) for o in planner.offers):
            why = f"needs {group.resources.describe()}, more than any instance type offers"
        elif not planner.feasible[gi]:
            why = "no pool and instance type satisfies its constraints"
        else:
            pools = sorted(
                {planner.pools[planner.offers[o].pool].spec.name for o in planner.feasible[gi]}
            )
            why = f"pools {', '.join(pools)} are at max_nodes, budget or availability"
        for task_id, n in list(group.ids):
            out.append(Unplaceable(task_id, n, why))
        group.ids.clear()
    return out


def scale_up_and_busy_nodes(
    demand: Sequence[Task], pools: Sequence[PoolState]
) -> tuple[Plan, set[str]]:
    """The scale-up plan and the existing nodes it gives demand to (not to be released)."""
    planner = _ScaleUpPlanner(demand, pools)
    planner.absorb_existing()
    tiers: dict[int, list[int]] = {}
    for p, pool in enumerate(pools):
        tiers.setdefault(pool.spec.preference, []).append(p)
    bins: list[_Bin] = []
    for pref in sorted(tiers):
        bins.extend(planner.plan_tier(tiers[pref]))
    min_bins = planner.min_nodes(bins)
    result = Plan(
        scale_up=tuple(_decisions(planner, bins, min_bins)),
        unplaceable=tuple(_unplaceable(planner)),
        covered=tuple(planner.covered),
    )
    return result, planner.busy_nodes


def plan_scale_up(demand: Sequence[Task], pools: Sequence[PoolState]) -> Plan:
    """Instances to buy so the pending ``demand`` fits, cheapest first within preference."""
    return scale_up_and_busy_nodes(demand, pools)[0]
