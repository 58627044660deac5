"""Planning: turn task-group demands and a snapshot into one :class:`Plan`.

This is the function the leader's scheduler workers call, Nomad-style: pure, over immutable
node and allocation views, with randomness (candidate sampling order) from a seed carried in
the evaluation. For each instance: feasible nodes, then (sampled) candidates, then ranking;
a ``gang`` group is placed all or nothing; when ``preempt`` is on and nothing fits, the
fewest lower-priority allocations are planned for eviction. Unplaced work is explained in a
:class:`FilterReport`.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Sequence

import numpy as np

from federation.model import fit
from federation.scheduler.feasibility import (
    ConstraintCache,
    Usage,
    add_instance,
    count_existing,
    feasible_nodes,
)
from federation.scheduler.fragmentation import WorkloadProfile
from federation.scheduler.gpuindex import fast_path_applies, index_for
from federation.scheduler.nodeset import NodeSet
from federation.scheduler.preemption import plan_preemption
from federation.scheduler.ranking import (
    Affinity,
    RankedNode,
    candidate_limit,
    rank,
    ranks_by_fragmentation,
    spread_score,
)
from federation.scheduler.types import (
    AllocationView,
    Eviction,
    FilterReport,
    NodeView,
    PlacementDecision,
    Plan,
    TaskGroupDemand,
)


def _sample(
    nodes: NodeSet,
    group: TaskGroupDemand,
    usage: Usage,
    existing: dict[str, int],
    cache: ConstraintCache,
    rng: random.Random,
    limit: int,
    admits: Callable[[NodeView], bool],
) -> list[NodeView]:
    """``limit`` random feasible candidates plus up to ``limit`` of the nodes this plan used
    last. The recent nodes are the partly filled ones bin-packing wants; random draws alone
    lose packing."""
    found: list[NodeView] = []
    seen: set[int] = set()
    if usage.cpu_milli:
        recent = 0
        for node_id in reversed(usage.cpu_milli):
            i = nodes.position(node_id)
            if i is None or i in seen:
                continue
            seen.add(i)
            if admits(nodes[i]):
                found.append(nodes[i])
            recent += 1
            if recent >= limit:
                break
    wanted = len(found) + limit
    # Draw random nodes until enough are feasible; when feasible nodes are scarce, scan all.
    for _ in range(max(limit * 8, 32)):
        i = rng.randrange(len(nodes))
        if i in seen:
            continue
        seen.add(i)
        if admits(nodes[i]):
            found.append(nodes[i])
        if len(found) >= wanted:
            return found
    everything = feasible_nodes(nodes, group, usage=usage, existing_per_node=existing, cache=cache)
    if len(everything) <= limit:
        return everything
    return rng.sample(everything, limit)


def plan_group(
    nodes: Sequence[NodeView],
    group: TaskGroupDemand,
    allocations: Sequence[AllocationView] = (),
    *,
    usage: Usage | None = None,
    profile: WorkloadProfile | None = None,
    seed: int = 0,
    sampling: bool = True,
    preempt: bool = False,
    affinities: Sequence[Affinity] = (),
    first_index: int = 0,
    own: Sequence[AllocationView] | None = None,
    indexed: bool = True,
    usage_owned: bool = False,
) -> tuple[list[PlacementDecision], list[Eviction], FilterReport | None, Usage]:
    """Place ``group.count`` instances (numbered from ``first_index``) on ``nodes``.

    Returns the placements, the evictions they need, a report when some instances stay
    unplaced (``None`` when all placed) and the usage overlay after this group. The input
    ``usage`` is not modified, unless ``usage_owned`` says the caller gives it up (it is then
    updated in place and returned, saving a copy; a gang group still works on a copy, to
    drop it whole). ``own`` is the job's share of ``allocations`` when the caller
    has it already (``allocations`` then only matters for preemption). GPU groups ranked
    over every node go through the overlay's :class:`~federation.scheduler.gpuindex.GpuIndex`
    (the same choices, at the cost of distinct node states); ``indexed=False`` ranks them
    node by node instead.
    """
    nodes = NodeSet.of(nodes)
    rng: random.Random | None = None  # drawn from only when sampling
    if usage is not None and usage_owned and not group.gang:
        work = usage
    else:
        work = usage.copy() if usage is not None else Usage()
    cache = ConstraintCache(group.constraints)
    mine = own if own is not None else [a for a in allocations if a.job_id == group.job_id]
    existing = count_existing(mine, group)
    job_on_node: dict[str, int] = {}
    for alloc in mine:
        job_on_node[alloc.node_id] = job_on_node.get(alloc.node_id, 0) + 1
    value_counts: dict[str, int] = {}
    known_values: list[str] = []
    if group.spread is not None:
        attr = group.spread.attribute
        known_values = nodes.ready_values(attr)
        for alloc in mine:
            i = nodes.position(alloc.node_id)
            if alloc.group == group.name and i is not None:
                value = nodes[i].attribute(attr)
                if value is not None:
                    value_counts[value] = value_counts.get(value, 0) + 1
    victims_taken: set[str] = set()
    placements: list[PlacementDecision] = []
    evictions: list[Eviction] = []
    report: FilterReport | None = None
    frag = ranks_by_fragmentation(group, profile, nodes.has_gpus)
    limit = candidate_limit(group, len(nodes)) if sampling and not frag else None
    # Sampling: the node chosen last, and the sort key of the runner-up of that sample. Placing
    # an instance only lowers scores (the chosen node's and, with spread, those sharing its
    # value), so while the last choice still ranks ahead of the runner-up it is still the
    # sample's best and the next instance goes there without drawing a new sample.
    last: RankedNode | None = None
    runner_up: tuple[float, float, str] | None = None

    def rank_now(candidates: Sequence[NodeView]) -> list[RankedNode]:
        # The overlay, counts and spread values are updated in place as instances land.
        return rank(candidates, group, work, profile=profile, value_counts=value_counts,
                    known_values=known_values, job_on_node=job_on_node, affinities=affinities,
                    fragmentation=frag)
    # Scoring every node: feasibility and scores change only on the node just used, so keep
    # them and refresh that one node per instance (spread is added per attribute value).
    pool: dict[str, RankedNode] = {}
    # Without spread a node's score changes only when it is used: a heap with lazy deletion.
    heap: list[tuple[tuple[float, float, str], str]] = []
    fast = indexed and frag and fast_path_applies(group, profile, affinities)
    gpu_index = index_for(nodes, work) if fast else None
    per_node = fit.per_node_limit(group.distinct_hosts, group.max_per_node)
    group_key = (group.job_id, group.name)
    admits = fit.admission(
        group.resources, work, cache, per_node,
        lambda node_id: existing.get(node_id, 0) + work.group_count.get((*group_key, node_id), 0))
    at_limit = allowed = np.zeros(0, bool)
    if gpu_index is not None:
        allowed = gpu_index.allowed(cache)
        if per_node is not None:
            at_limit = np.zeros(len(nodes), bool)
            for key, n in work.group_count.items():
                if key[0] == group.job_id and key[1] == group.name:
                    existing_here = existing.get(key[2], 0)
                    _mark_limit(nodes, at_limit, key[2], existing_here + n, per_node)
            for node_id, n in existing.items():
                here = n + work.group_count.get((group.job_id, group.name, node_id), 0)
                _mark_limit(nodes, at_limit, node_id, here, per_node)
    elif limit is None:
        first = feasible_nodes(nodes, group, usage=work, existing_per_node=existing, cache=cache)
        ranked = rank(
            first,
            group,
            work,
            profile=profile,
            job_on_node=job_on_node,
            affinities=affinities,
            include_spread=False,
            fragmentation=frag,
        )
        pool = {r.node.id: r for r in ranked}
        heap = [(r.sort_key(), r.node.id) for r in ranked]
        heapq.heapify(heap)
    for index in range(first_index, first_index + group.count):
        chosen_node: NodeView | None = None
        devices: tuple[int, ...] = ()
        score = 0.0
        best: RankedNode | None = None
        if gpu_index is not None:
            room = gpu_index.fits(group.resources, allowed)
            if per_node is not None:
                room &= ~at_limit
            choice = gpu_index.best(group, room, profile, job_on_node)
            if choice is not None:
                i, picked, fast_score = choice
                best = RankedNode(nodes[i], fast_score, picked)
        elif limit is None:
            if group.spread is None:
                while heap and (
                    heap[0][1] not in pool or pool[heap[0][1]].sort_key() != heap[0][0]
                ):
                    heapq.heappop(heap)
                best = pool[heap[0][1]] if heap else None
            else:
                best = _best_of_pool(pool, group, value_counts, known_values)
        else:
            if last is not None and admits(last.node):
                best = rank_now([last.node])[0]  # scored again after the last placement
                if runner_up is not None and best.sort_key() > runner_up:
                    best = None
            if best is None:
                rng = rng if rng is not None else random.Random(seed)
                candidates = _sample(nodes, group, work, existing, cache, rng, limit, admits)
                ranked_sample = rank_now(candidates)
                best = ranked_sample[0] if ranked_sample else None
                runner_up = ranked_sample[1].sort_key() if len(ranked_sample) > 1 else None
            last = best
        if best is not None:
            chosen_node, devices, score = best.node, best.devices, best.score
        elif preempt:
            option = _preemption_option(
                nodes, group, allocations, work, existing, cache, victims_taken
            )
            if option is not None:
                for victim in option.victims:
                    work.release(option.node, victim)
                    victims_taken.add(victim.id)
                    evictions.append(
                        Eviction(victim.id, option.node.id, victim.priority, group.job_id)
                    )
                again = rank([option.node], group, work, profile=profile, fragmentation=frag)
                chosen_node, devices, score = option.node, again[0].devices, again[0].score
        if chosen_node is None and gpu_index is not None:
            report = gpu_index.report(group, cache, at_limit if per_node is not None else None,
                                      fit.limit_reason(group.distinct_hosts))
            report.unplaced = first_index + group.count - index
            break
        if chosen_node is None:
            report = FilterReport()
            feasible_nodes(
                nodes,
                group,
                usage=work,
                existing_per_node=existing,
                cache=ConstraintCache(group.constraints),
                report=report,
            )
            report.unplaced = first_index + group.count - index
            break
        add_instance(work, chosen_node, group, devices)
        job_on_node[chosen_node.id] = job_on_node.get(chosen_node.id, 0) + 1
        if group.spread is not None:
            value = chosen_node.attribute(group.spread.attribute)
            if value is not None:
                value_counts[value] = value_counts.get(value, 0) + 1
        if gpu_index is not None:
            if per_node is not None:
                here = existing.get(chosen_node.id, 0) + work.group_count.get(
                    (group.job_id, group.name, chosen_node.id), 0)
                _mark_limit(nodes, at_limit, chosen_node.id, here, per_node)
        elif limit is None:
            pool.pop(chosen_node.id, None)
            still = feasible_nodes(
                [chosen_node], group, usage=work, existing_per_node=existing, cache=cache
            )
            if still:
                fresh = rank(
                    still,
                    group,
                    work,
                    profile=profile,
                    job_on_node=job_on_node,
                    affinities=affinities,
                    include_spread=False,
                    fragmentation=frag,
                )[0]
                pool[chosen_node.id] = fresh
                heapq.heappush(heap, (fresh.sort_key(), chosen_node.id))
        placements.append(
            PlacementDecision(
                group.job_id, group.name, index, chosen_node.id, group.resources, devices, score
            )
        )
    if report is not None and group.gang:
        report.gang_incomplete = True
        report.unplaced = group.count
        return [], [], report, usage.copy() if usage is not None else Usage()
    return placements, evictions, report, work


def _mark_limit(nodes: NodeSet, at_limit: np.ndarray, node_id: str, here: int,
                limit: int) -> None:
    i = nodes.position(node_id)
    if i is not None:
        at_limit[i] = here >= limit


def _best_of_pool(
    pool: dict[str, RankedNode],
    group: TaskGroupDemand,
    value_counts: dict[str, int],
    known_values: list[str],
) -> RankedNode | None:
    if not pool:
        return None
    if group.spread is None:
        return min(pool.values(), key=RankedNode.sort_key)
    attr = group.spread.attribute
    bonus: dict[str | None, float] = {}
    best: RankedNode | None = None
    best_key = None
    for r in pool.values():
        value = r.node.attribute(attr)
        if value not in bonus:
            bonus[value] = spread_score(r.node, group, value_counts, known_values)
        candidate = RankedNode(r.node, r.score + bonus[value], r.devices)
        key = candidate.sort_key()
        if best_key is None or key < best_key:
            best, best_key = candidate, key
    return best


def _preemption_option(nodes, group, allocations, work, existing, cache, victims_taken):
    eligible = [
        n
        for n in nodes
        if n.status == "ready"
        and not n.draining
        and cache.first_failing(n) is None
        and not _at_limit(n, group, work, existing)
    ]
    remaining = [a for a in allocations if a.id not in victims_taken]
    return plan_preemption(eligible, group.resources, group.priority, remaining, work)


def _at_limit(
    node: NodeView, group: TaskGroupDemand, work: Usage, existing: dict[str, int]
) -> bool:
    limit = fit.per_node_limit(group.distinct_hosts, group.max_per_node)
    if limit is None:
        return False
    here = existing.get(node.id, 0) + work.group_count.get((group.job_id, group.name, node.id), 0)
    return here >= limit


def plan_job(
    nodes: Sequence[NodeView],
    groups: Sequence[TaskGroupDemand],
    allocations: Sequence[AllocationView] = (),
    *,
    profile: WorkloadProfile | None = None,
    seed: int = 0,
    sampling: bool = True,
    preempt: bool = False,
) -> Plan:
    """Plan every group of one job against the same snapshot; groups see each other's
    placements. A gang group that cannot be completed contributes nothing."""
    plan = Plan()
    usage = Usage()
    for i, group in enumerate(groups):
        placed, evicted, report, usage = plan_group(
            nodes,
            group,
            allocations,
            usage=usage,
            profile=profile,
            seed=seed + i,
            sampling=sampling,
            preempt=preempt,
        )
        plan.placements.extend(placed)
        plan.evictions.extend(evicted)
        if report is not None:
            plan.unplaced[group.name] = report
    return plan


def verify_plan(
    plan: Plan,
    nodes: Sequence[NodeView],
    allocations: Sequence[AllocationView] = (),
) -> tuple[Plan, list[str]]:
    """Re-check a plan against newer state, node by node, as the one plan applier does.

    ``nodes`` and ``allocations`` are the latest snapshot. A node's placements are accepted
    together if the node is still ready, not draining, and everything planned there (after
    the plan's evictions on it) still fits; otherwise all of them are rejected and the node
    id returned, so the evaluation can be re-planned. Evictions of allocations that no longer
    exist are dropped. Returns ``(accepted plan, rejected node ids)``.
    """
    by_id = {n.id: n for n in nodes}
    alive = {a.id: a for a in allocations}
    accepted = Plan(unplaced=dict(plan.unplaced))
    rejected: list[str] = []
    placed_on: dict[str, list[PlacementDecision]] = {}
    for p in plan.placements:
        placed_on.setdefault(p.node_id, []).append(p)
    evicted_on: dict[str, list[Eviction]] = {}
    for e in plan.evictions:
        if e.allocation_id in alive:
            evicted_on.setdefault(e.node_id, []).append(e)
    for node_id in sorted(placed_on.keys() | {e.node_id for e in plan.evictions}):
        node = by_id.get(node_id)
        here = placed_on.get(node_id, [])
        evictions = evicted_on.get(node_id, [])
        if node is None or node.status != "ready" or node.draining:
            if here:
                rejected.append(node_id)
            continue
        asks = [(p.job_id, p.group, p.resources, p.gpu_devices) for p in here]
        ok = fit.node_takes(node, asks, [alive[e.allocation_id] for e in evictions])
        if ok:
            accepted.placements.extend(here)
            accepted.evictions.extend(evictions)
        else:
            rejected.append(node_id)
    return accepted, rejected
