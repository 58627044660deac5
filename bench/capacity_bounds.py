"""Lower bounds on the hourly cost of the instances that pending demand needs.

Used by the autoscaler benchmarks (and their tests) to judge the planner: each function
takes the demand as pod shapes with counts and a catalog of instance types, and returns a
number no feasible purchase can beat (or, for ``exact_optimum``, the optimum itself with a
proven bound when a time limit stops the search). A purchase is feasible when every pod can
be put on one of the bought instances with, on each instance, the pods' CPU, memory and GPU
requests summed within its capacity on every dimension at once.

* ``aggregate_lp_bound``: fractional instances, per-dimension totals (weak, fast).
* ``configuration_lp_bound``: the configuration (Gilmore-Gomory) LP, solved by column
  generation with an exact knapsack per instance type, certified by a Farley bound.
* ``exact_optimum``: an assignment integer program; its proven dual bound when it stops early.

Needs scipy (HiGHS); the planner itself does not.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from federation.autoscaler.planner import Task
from federation.providers.base import InstanceType


@dataclass(frozen=True)
class Shape:
    """``count`` identical pods."""

    cpu_milli: int
    memory_mib: int
    gpu: int
    count: int

    @property
    def need(self) -> tuple[int, int, int]:
        return (self.cpu_milli, self.memory_mib, self.gpu)


def shapes_of(tasks: Iterable[Task]) -> list[Shape]:
    counts: Counter[tuple[int, int, int]] = Counter()
    for task in tasks:
        r = task.resources
        counts[(r.cpu_milli, r.memory_mib, r.gpu)] += task.count
    return [Shape(c, m, g, n) for (c, m, g), n in sorted(counts.items()) if n > 0]


def _cap(t: InstanceType) -> tuple[int, int, int]:
    return (t.cpu_milli, t.memory_mib, t.gpu)


def undominated(types: Sequence[InstanceType]) -> list[InstanceType]:
    """Drop every type another type matches or beats on all three capacities for no more
    money (of equals, the first is kept). Swapping a dominated instance for its dominator
    keeps any packing feasible at no higher cost, so every bound over the kept types is a
    bound over all of them."""
    kept: list[InstanceType] = []
    for i, t in enumerate(types):
        dominated = False
        for j, u in enumerate(types):
            if i == j or u.price_per_hour > t.price_per_hour:
                continue
            if not all(a >= b for a, b in zip(_cap(u), _cap(t), strict=True)):
                continue
            same = u.price_per_hour == t.price_per_hour and _cap(u) == _cap(t)
            if not same or j < i:
                dominated = True
                break
        if not dominated:
            kept.append(t)
    return kept


def _fits(need: tuple[int, int, int], cap: tuple[int, int, int]) -> bool:
    return all(n <= c for n, c in zip(need, cap, strict=True))


def aggregate_lp_bound(shapes: Sequence[Shape], types: Sequence[InstanceType]) -> float:
    """The LP relaxation of buying capacity: fractional instances, per-dimension totals.

    For each GPU threshold k among the requests, the types with at least k GPUs must hold,
    on every dimension, the pods that need at least k GPUs (k = 0: all types, all pods).
    Every packing satisfies these constraints, so their cheapest fractional solution costs
    no more than any packing.
    """
    caps = [_cap(t) for t in types]
    rows, rhs = [], []
    for k in sorted({0} | {s.gpu for s in shapes}):
        need = [0.0, 0.0, 0.0]
        for s in shapes:
            if s.gpu >= k:
                for d in range(3):
                    need[d] += s.need[d] * s.count
        for d in range(3):
            if need[d] > 0:
                rows.append([-c[d] if c[2] >= k else 0.0 for c in caps])
                rhs.append(-need[d])
    if not rows:
        return 0.0
    result = linprog(
        [t.price_per_hour for t in types],
        A_ub=rows,
        b_ub=rhs,
        bounds=[(0, None)] * len(types),
        method="highs",
    )
    return float(result.fun) if result.status == 0 else math.inf


# ---- configuration LP --------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigurationBound:
    bound: float  # certified lower bound on every feasible purchase
    lp: float  # the restricted master's value when generation stopped (>= bound)
    converged: bool  # no column prices out: ``bound`` is the configuration LP optimum
    iterations: int
    columns: int
    integer: float  # cheapest purchase using only generated patterns (a feasible cost)
    seconds: float
    duals: tuple[float, ...] = ()  # per shape, scaled to be dual feasible (they sum to bound)


def _best_pattern(
    duals: np.ndarray, shapes: Sequence[Shape], cap: tuple[int, int, int], gap: float
) -> tuple[float, list[int]]:
    """The most dual value one instance of capacity ``cap`` can hold.

    Returns an upper bound on that value (the MILP's proven bound, so a time or gap limit
    never makes it too small) and the best pattern found (counts per shape).
    """
    idx = [g for g, s in enumerate(shapes) if duals[g] > 1e-12 and _fits(s.need, cap)]
    if not idx:
        return 0.0, [0] * len(shapes)
    upper = []
    for g in idx:
        s = shapes[g]
        most = s.count
        for need, have in zip(s.need, cap, strict=True):
            if need > 0:
                most = min(most, have // need)
        upper.append(most)
    a = np.array([[shapes[g].need[d] for g in idx] for d in range(3)], dtype=float)
    result = milp(
        -duals[idx],
        constraints=LinearConstraint(a, -np.inf, np.array(cap, dtype=float)),
        integrality=np.ones(len(idx)),
        bounds=Bounds(np.zeros(len(idx)), np.array(upper, dtype=float)),
        options={"mip_rel_gap": gap, "time_limit": 10.0},
    )
    pattern = [0] * len(shapes)
    if result.x is not None:
        for k, g in enumerate(idx):
            pattern[g] = int(round(result.x[k]))
    bound = getattr(result, "mip_dual_bound", None)
    if bound is None or not math.isfinite(bound):
        # no proven bound came back: fall back to the LP relaxation's (always valid) value
        relaxed = linprog(
            -duals[idx],
            A_ub=a,
            b_ub=np.array(cap, dtype=float),
            bounds=list(zip([0] * len(idx), upper, strict=True)),
            method="highs",
        )
        bound = relaxed.fun
    return max(0.0, -float(bound)), pattern


def _homogeneous(shapes: Sequence[Shape], cap: tuple[int, int, int], g: int) -> list[int]:
    s = shapes[g]
    most = s.count
    for need, have in zip(s.need, cap, strict=True):
        if need > 0:
            most = min(most, have // need)
    pattern = [0] * len(shapes)
    pattern[g] = most
    return pattern


def configuration_lp_bound(
    shapes: Sequence[Shape],
    types: Sequence[InstanceType],
    *,
    seeds: Iterable[tuple[int, Sequence[int]]] = (),
    time_limit: float = 60.0,
    max_iterations: int = 1000,
    smoothing: float = 0.5,
    pricing_gap: float = 1e-6,
) -> ConfigurationBound:
    """The configuration LP, by column generation, with a certified (Farley) bound.

    Master: min sum_p price(p) x_p s.t. sum_p a_gp x_p >= n_g for every shape g, x >= 0,
    where a pattern p is one instance of one type and a_gp <= n_g pods of each shape that
    fit on it on every dimension at once. Any feasible purchase, with its pods assigned,
    is an integer solution of it, so its LP optimum is a lower bound.

    Certificate: the master's duals pi >= 0 give, by LP duality, the bound
    sum_g n_g pi_g / rho where rho = max(1, max_t v_t / price_t) and v_t bounds from above
    the most dual value one instance of type t can hold (an exact knapsack, its proven
    bound taken). pi / rho is dual feasible, so the bound holds whether or not generation
    converged, and equals the LP optimum when it did (rho = 1).

    Generation prices at the master's duals smoothed toward the best certified ones so far
    (Wentges smoothing, weight ``smoothing``), which damps the duals' oscillation; pricing at
    any duals gives a valid certificate, and generation ends only when nothing prices out
    at the master's own duals, or at ``max_iterations`` or ``time_limit`` seconds.

    ``seeds`` are extra starting patterns, as (type index, counts per shape).
    """
    started = time.perf_counter()
    types = list(types)
    caps = [_cap(t) for t in types]
    prices = np.array([t.price_per_hour for t in types], dtype=float)
    demand = np.array([s.count for s in shapes], dtype=float)
    if not shapes:
        return ConfigurationBound(0.0, 0.0, True, 0, 0, 0.0, 0.0)
    columns: list[tuple[int, tuple[int, ...]]] = []
    seen: set[tuple[int, tuple[int, ...]]] = set()

    def add(t: int, pattern: Sequence[int]) -> bool:
        key = (t, tuple(int(v) for v in pattern))
        if key in seen or not any(key[1]):
            return False
        seen.add(key)
        columns.append(key)
        return True

    for g, s in enumerate(shapes):
        holders = [t for t in range(len(types)) if _fits(s.need, caps[t])]
        if not holders:
            return ConfigurationBound(math.inf, math.inf, True, 0, 0, math.inf, 0.0)
        for t in holders:
            add(t, _homogeneous(shapes, caps[t], g))
    for t, pattern in seeds:
        add(t, pattern)

    best_bound, lp_value, converged, iterations = 0.0, math.inf, False, 0
    best_duals = np.zeros(len(shapes))
    exact = True  # price at the master's own duals (else at duals smoothed toward the best)
    while iterations < max_iterations and time.perf_counter() - started < time_limit:
        iterations += 1
        a = np.array([col[1] for col in columns], dtype=float).T
        cost = np.array([prices[col[0]] for col in columns])
        master = linprog(cost, A_ub=-a, b_ub=-demand, bounds=(0, None), method="highs")
        lp_value = float(master.fun)
        duals = np.maximum(0.0, -np.asarray(master.ineqlin.marginals, dtype=float))
        if not exact:
            duals = smoothing * best_duals + (1 - smoothing) * duals
        rho, added = 1.0, 0
        for t in range(len(types)):
            value, pattern = _best_pattern(duals, shapes, caps[t], pricing_gap)
            if prices[t] > 0:
                rho = max(rho, value / prices[t])
            elif value > 1e-12:
                rho = math.inf
            pattern_value = float(np.dot(duals, pattern))
            if pattern_value > prices[t] * (1 + 1e-9) + 1e-12 and add(t, pattern):
                added += 1
        bound = float(np.dot(duals, demand)) / rho
        if bound > best_bound:
            best_bound, best_duals = bound, duals / rho
        if lp_value - best_bound <= 1e-7 * max(1.0, lp_value):
            converged = True
            break
        if added == 0:
            if exact:  # nothing prices out at the master's duals: the LP is solved
                converged = True
                break
            exact = True  # a mis-price of the smoothed duals: price at the master's next
        else:
            exact = smoothing <= 0
    integer = _integer_over_columns(columns, prices, demand, time_limit=min(30.0, time_limit))
    return ConfigurationBound(
        bound=best_bound,
        lp=lp_value,
        converged=converged,
        iterations=iterations,
        columns=len(columns),
        integer=integer,
        seconds=time.perf_counter() - started,
        duals=tuple(float(v) for v in best_duals),
    )


def _integer_over_columns(
    columns: Sequence[tuple[int, tuple[int, ...]]],
    prices: np.ndarray,
    demand: np.ndarray,
    time_limit: float,
) -> float:
    """The cheapest integer purchase using generated patterns only: a feasible cost, so an
    upper bound on the optimum (a reference for how good a packing can be, not a bound)."""
    a = np.array([col[1] for col in columns], dtype=float).T
    cost = np.array([prices[col[0]] for col in columns])
    result = milp(
        cost,
        constraints=LinearConstraint(a, demand, np.inf),
        integrality=np.ones(len(columns)),
        bounds=Bounds(0, np.inf),
        options={"time_limit": time_limit, "mip_rel_gap": 1e-4},
    )
    return float(result.fun) if result.x is not None else math.inf


# ---- exact optimum -----------------------------------------------------------------------


@dataclass(frozen=True)
class Exact:
    lower: float  # proven lower bound on every feasible purchase
    upper: float  # cost of the best purchase found (inf: none)
    optimal: bool  # lower == upper up to the solver's tolerance


def exact_optimum(
    shapes: Sequence[Shape], types: Sequence[InstanceType], *, time_limit: float = 30.0
) -> Exact:
    """The cheapest feasible purchase, as an assignment integer program.

    One slot per pod (an optimal purchase has no empty instance, so at most that many
    instances); slot j buys at most one type (y_jt) and holds x_jg pods of shape g within
    that type's capacity on every dimension; every pod is in a slot. Slots are ordered by
    non-increasing price to cut symmetry, which keeps one optimal solution. When the time
    limit stops the solver, ``lower`` is its proven dual bound, not its incumbent.
    """
    types = list(types)
    shapes = [s for s in shapes if s.count > 0]
    if not shapes:
        return Exact(0.0, 0.0, True)
    n_slots = sum(s.count for s in shapes)
    n_t, n_g = len(types), len(shapes)
    per_slot = n_t + n_g
    n_var = n_slots * per_slot

    def y(j: int, t: int) -> int:
        return j * per_slot + t

    def x(j: int, g: int) -> int:
        return j * per_slot + n_t + g

    rows: list[dict[int, float]] = []
    lo: list[float] = []
    hi: list[float] = []
    for g, s in enumerate(shapes):
        rows.append({x(j, g): 1.0 for j in range(n_slots)})
        lo.append(s.count)
        hi.append(s.count)
    for j in range(n_slots):
        for d in range(3):
            row = {x(j, g): float(s.need[d]) for g, s in enumerate(shapes) if s.need[d]}
            if not row:
                continue
            for t, itype in enumerate(types):
                row[y(j, t)] = -float(_cap(itype)[d])
            rows.append(row)
            lo.append(-np.inf)
            hi.append(0.0)
        rows.append({y(j, t): 1.0 for t in range(n_t)})
        lo.append(-np.inf)
        hi.append(1.0)
        if j + 1 < n_slots:
            row = {y(j, t): itype.price_per_hour for t, itype in enumerate(types)}
            for t, itype in enumerate(types):
                row[y(j + 1, t)] = row.get(y(j + 1, t), 0.0) - itype.price_per_hour
            rows.append(row)
            lo.append(0.0)
            hi.append(np.inf)
    a = np.zeros((len(rows), n_var))
    for i, row in enumerate(rows):
        for v, coef in row.items():
            a[i, v] = coef
    cost = np.zeros(n_var)
    upper = np.zeros(n_var)
    for j in range(n_slots):
        for t, itype in enumerate(types):
            cost[y(j, t)] = itype.price_per_hour
            upper[y(j, t)] = 1
        for g, s in enumerate(shapes):
            upper[x(j, g)] = s.count
    result = milp(
        cost,
        constraints=LinearConstraint(a, np.array(lo), np.array(hi)),
        integrality=np.ones(n_var),
        bounds=Bounds(np.zeros(n_var), upper),
        options={"time_limit": time_limit, "mip_rel_gap": 1e-6},
    )
    if result.status == 2:  # infeasible: some pod fits no type
        return Exact(math.inf, math.inf, True)
    best = float(result.fun) if result.x is not None else math.inf
    proven = getattr(result, "mip_dual_bound", None)
    if proven is None or not math.isfinite(proven):
        proven = 0.0
    return Exact(float(proven), best, result.status == 0)
