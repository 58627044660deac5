"""AWS instance types for a pool: shapes from ``describe_instance_types``, zones from
``describe_instance_type_offerings``, prices from the table shipped in ``prices.json``.

Stateless apart from a cache; makes no launch decisions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from federation.providers.base import InstanceType, select_types

if TYPE_CHECKING:
    from federation.specs.pool import PoolSpec

_TTL_SECONDS = 3600.0


@cache
def price_table() -> dict[str, dict[str, dict[str, float]]]:
    """Region -> instance type -> {"on_demand", "spot"} in USD per hour."""
    raw = json.loads(files("federation.providers.aws").joinpath("prices.json").read_text())
    return dict(raw["regions"])


def prices_for(pool: PoolSpec) -> dict[str, dict[str, float]]:
    """The shipped table for the pool's region, with ``settings.prices`` on top."""
    table = {k: dict(v) for k, v in price_table().get(pool.region or "", {}).items()}
    for name, entry in (pool.settings.get("prices") or {}).items():
        table[name] = {**table.get(name, {}), **dict(entry)}
    return table


class Catalog:
    """Builds and caches a pool's instance types; ``call`` runs one EC2 API call."""

    def __init__(self) -> None:
        self._cache: dict[tuple[Any, ...], tuple[float, list[InstanceType]]] = {}

    def types(self, pool: PoolSpec, ec2: Any, call: Any) -> list[InstanceType]:
        prices = prices_for(pool)
        names = list(pool.instance_types or sorted(prices))
        key = (
            pool.region,
            pool.settings.get("endpoint_url"),
            tuple(names),
            json.dumps(pool.settings.get("prices"), sort_keys=True),
        )
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < _TTL_SECONDS:
            return select_types(pool, hit[1])
        shapes: dict[str, Mapping[str, Any]] = {}
        for start in range(0, len(names), 100):
            chunk = names[start : start + 100]
            for page in call(
                ec2.get_paginator("describe_instance_types").paginate,
                InstanceTypes=chunk,
                pagination=True,
            ):
                for it in page.get("InstanceTypes", []):
                    shapes[it["InstanceType"]] = it
        zones: dict[str, list[str]] = {}
        for page in call(
            ec2.get_paginator("describe_instance_type_offerings").paginate,
            LocationType="availability-zone",
            Filters=[{"Name": "instance-type", "Values": list(shapes)}],
            pagination=True,
        ):
            for offer in page.get("InstanceTypeOfferings", []):
                zones.setdefault(offer["InstanceType"], []).append(offer["Location"])
        out = []
        for name in names:
            shape = shapes.get(name)
            price = prices.get(name, {})
            if shape is None or "on_demand" not in price:
                continue  # unknown here, or no price to plan with
            gpus = sum(int(g.get("Count", 0)) for g in shape.get("GpuInfo", {}).get("Gpus", []))
            out.append(
                InstanceType(
                    name=name,
                    cpu_milli=int(shape["VCpuInfo"]["DefaultVCpus"]) * 1000,
                    memory_mib=int(shape["MemoryInfo"]["SizeInMiB"]),
                    gpu=gpus,
                    price_per_hour=float(price["on_demand"]),
                    spot_price_per_hour=(
                        float(price["spot"]) if price.get("spot") is not None else None
                    ),
                    zones=tuple(sorted(zones.get(name, []))),
                )
            )
        self._cache[key] = (time.monotonic(), out)
        return select_types(pool, out)
