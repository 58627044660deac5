"""The ``onprem`` provider: racks of hosts from an inventory file, with optional power hooks.

Hosts run the agent and join by themselves. A host with a ``power_on``/``power_off`` hook
(any command, e.g. ``ipmitool ... chassis power on`` or a Wake-on-LAN sender) can be woken
when demand needs it and switched off when idle; a host without hooks is always on. The
marginal price of a host is zero. Inventory (YAML or JSON)::

    hosts:
      - {name: r1-h01, address: 10.0.1.11, rack: r1, zone: dc1-a,
         cpu_milli: 32000, memory_mib: 131072, gpu: 0, instance_type: std-32c}
    power_on: "ipmitool -H {address} -U admin chassis power on"
    power_off: "ipmitool -H {address} -U admin chassis power soft"

Power state and which request token woke a host are kept in a state file next to it.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from federation.errors import CapacityError, ProviderError, TransientError, ValidationError
from federation.providers.base import (
    RUNNING,
    STOPPED,
    Bootstrap,
    Instance,
    InstanceType,
    LaunchResult,
    Provider,
    select_types,
)
from federation.specs.documents import decode

if TYPE_CHECKING:
    from federation.specs.pool import PoolSpec

_HOOK_TIMEOUT = 120.0


def _host_type(host: Mapping[str, Any]) -> str:
    if host.get("instance_type"):
        return str(host["instance_type"])
    cpu = int(host["cpu_milli"]) // 1000
    mem = int(host["memory_mib"]) // 1024
    gpu = int(host.get("gpu", 0))
    return f"host-{cpu}c-{mem}g" + (f"-{gpu}gpu" if gpu else "")


class OnPremProvider(Provider):
    """Pool settings: ``inventory`` (path), ``state_file`` (default: inventory + .state.json),
    ``power_on``/``power_off`` (override the inventory's hooks)."""

    name = "onprem"

    def _inventory(self, pool: PoolSpec) -> dict[str, Any]:
        path = self.setting(pool, "inventory")
        if not path:
            raise ProviderError(
                f"pool {pool.name}: settings.inventory is required", field="settings.inventory"
            )
        try:
            data = decode(Path(path).read_bytes(), content_type="application/yaml")
        except (OSError, ValidationError) as exc:
            raise ProviderError(f"pool {pool.name}: cannot read inventory {path}: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("hosts"), list):
            raise ProviderError(f"inventory {path} must be a mapping with a list of hosts")
        for host in data["hosts"]:
            missing = {"name", "cpu_milli", "memory_mib"} - set(host)
            if missing:
                raise ProviderError(f"inventory {path}: host {host!r} lacks {sorted(missing)}")
        return data

    def _state_path(self, pool: PoolSpec) -> Path:
        explicit = self.setting(pool, "state_file")
        return (
            Path(explicit)
            if explicit
            else Path(str(self.setting(pool, "inventory")) + ".state.json")
        )

    def _state(self, pool: PoolSpec) -> dict[str, dict[str, Any]]:
        try:
            return dict(json.loads(self._state_path(pool).read_text()))
        except (OSError, ValueError):
            return {}

    def _save(self, pool: PoolSpec, state: Mapping[str, Any]) -> None:
        path = self._state_path(pool)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
        tmp.replace(path)

    def _hook(self, pool: PoolSpec, inv: Mapping[str, Any], which: str) -> str | None:
        hook = self.setting(pool, which) or inv.get(which)
        return str(hook) if hook else None

    def _is_on(self, host: Mapping[str, Any], state: Mapping[str, Any], hookable: bool) -> bool:
        if not hookable:
            return True
        return bool(state.get(host["name"], {}).get("on", False))

    def catalog(self, pool: PoolSpec) -> list[InstanceType]:
        inv = self._inventory(pool)
        state = self._state(pool)
        hookable = self._hook(pool, inv, "power_on") is not None
        shapes: dict[str, dict[str, Any]] = {}
        for host in inv["hosts"]:
            name = _host_type(host)
            entry = shapes.setdefault(name, {"host": host, "zones": [], "off": 0})
            zone = host.get("zone")
            if zone and zone not in entry["zones"]:
                entry["zones"].append(zone)
            if not self._is_on(host, state, hookable):
                entry["off"] += 1
        types = [
            InstanceType(
                name, int(e["host"]["cpu_milli"]), int(e["host"]["memory_mib"]),
                int(e["host"].get("gpu", 0)), 0.0, None, tuple(e["zones"]), available=e["off"],
            )
            for name, e in shapes.items()
        ]  # fmt: skip
        return select_types(pool, types)

    def _run(self, template: str, host: Mapping[str, Any]) -> None:
        values = {k: shlex.quote(str(v)) for k, v in host.items() if not isinstance(v, dict)}
        command = template.format_map({"address": values.get("name", ""), **values})
        try:
            done = subprocess.run(
                command, shell=True, capture_output=True, text=True, timeout=_HOOK_TIMEOUT
            )
        except subprocess.TimeoutExpired as exc:
            raise TransientError(f"power hook for {host['name']} timed out") from exc
        if done.returncode != 0:
            raise ProviderError(
                f"power hook for {host['name']} failed ({done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[:300]}"
            )

    def _instance(
        self, pool: PoolSpec, host: Mapping[str, Any], on: bool, rec: Mapping[str, Any]
    ) -> Instance:
        return Instance(
            id=str(host["name"]),
            pool=pool.name,
            instance_type=_host_type(host),
            state=RUNNING if on else STOPPED,
            zone=host.get("zone"),
            request_token=rec.get("token"),
            address=host.get("address"),
            launched_at=rec.get("since"),
            labels={"rack": str(host.get("rack", "")), **dict(host.get("labels") or {})},
        )

    def launch(
        self, pool: PoolSpec, instance_type: str, count: int, token: str, bootstrap: Bootstrap
    ) -> LaunchResult:
        inv = self._inventory(pool)
        power_on = self._hook(pool, inv, "power_on")
        if power_on is None:
            raise CapacityError(
                f"pool {pool.name} has no power_on hook: its hosts are always on and none "
                "can be added"
            )
        state = self._state(pool)
        hosts = [h for h in inv["hosts"] if _host_type(h) == instance_type]
        mine = [
            h
            for h in hosts
            if state.get(h["name"], {}).get("token") == token and state[h["name"]].get("on")
        ]
        woken = [self._instance(pool, h, True, state[h["name"]]) for h in mine]
        failures: list[str] = []
        zones = set(pool.zones)
        for host in hosts:
            if len(woken) >= count:
                break
            if self._is_on(host, state, True) or (zones and host.get("zone") not in zones):
                continue
            try:
                self._run(power_on, host)
            except ProviderError as exc:
                failures.append(exc.message)
                continue
            rec = {"on": True, "token": token, "since": time.time()}
            state[host["name"]] = rec
            self._save(pool, state)
            woken.append(self._instance(pool, host, True, rec))
        if not woken:
            raise CapacityError(
                f"pool {pool.name}: no powered-off host of type {instance_type} could be woken"
                + (f" ({'; '.join(failures)})" if failures else "")
            )
        if len(woken) < count:
            failures.append(f"only {len(woken)} of {count} hosts of type {instance_type} woke")
        return LaunchResult(token, count, tuple(woken), tuple(failures))

    def terminate(self, pool: PoolSpec, instance_ids: Sequence[str], token: str) -> None:
        inv = self._inventory(pool)
        power_off = self._hook(pool, inv, "power_off")
        if power_off is None:
            return  # always-on hosts: the server drains them, nothing to switch off
        state = self._state(pool)
        by_name = {h["name"]: h for h in inv["hosts"]}
        for iid in instance_ids:
            host = by_name.get(iid)
            if host is None or not state.get(iid, {}).get("on"):
                continue
            self._run(power_off, host)
            state[iid] = {"on": False, "token": token, "since": time.time()}
            self._save(pool, state)

    def list_instances(self, pool: PoolSpec) -> list[Instance]:
        inv = self._inventory(pool)
        state = self._state(pool)
        hookable = self._hook(pool, inv, "power_on") is not None
        out = []
        for host in inv["hosts"]:
            if self._is_on(host, state, hookable):
                out.append(self._instance(pool, host, True, state.get(host["name"], {})))
        return out
