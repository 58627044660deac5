"""GCE machine types for a pool: shapes and prices from the table shipped in ``prices.json``.

Stateless; makes no API calls, so planning works without credentials.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from federation.providers.base import InstanceType, select_types

if TYPE_CHECKING:
    from federation.specs.pool import PoolSpec


@cache
def _table() -> dict[str, Any]:
    return dict(json.loads(files("federation.providers.gcp").joinpath("prices.json").read_text()))


def zones_of(pool: PoolSpec) -> list[str]:
    """The pool's zones, or the usual first three of its region."""
    return list(pool.zones) or [f"{pool.region}-{s}" for s in ("a", "b", "c")]


def machine_types(pool: PoolSpec) -> list[InstanceType]:
    table = _table()
    shapes = {**table["machine_types"], **(pool.settings.get("machine_types") or {})}
    prices = {k: dict(v) for k, v in table["regions"].get(pool.region or "", {}).items()}
    for name, entry in (pool.settings.get("prices") or {}).items():
        prices[name] = {**prices.get(name, {}), **dict(entry)}
    zones = tuple(zones_of(pool))
    out = []
    for name, shape in shapes.items():
        price = prices.get(name)
        if not price or "on_demand" not in price:
            continue
        out.append(
            InstanceType(
                name=name,
                cpu_milli=int(shape["cpu_milli"]),
                memory_mib=int(shape["memory_mib"]),
                gpu=int(shape.get("gpu", 0)),
                price_per_hour=float(price["on_demand"]),
                spot_price_per_hour=float(price["spot"]) if price.get("spot") else None,
                zones=zones,
            )
        )
    out.sort(key=lambda t: t.name)
    return select_types(pool, out)
