"""The provider contract every capacity source implements, and the plugin registry.

A provider turns "N instances of type T in pool P" into machines that run ``federation
agent``. Built-in providers (local, onprem, aws, gcp) and third-party ones are found the same
way: through the entry point group ``federation.providers``.
"""

from __future__ import annotations

import importlib
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from federation.errors import ProviderError

if TYPE_CHECKING:
    from federation.specs.pool import PoolSpec

ENTRY_POINT_GROUP = "federation.providers"

# Instance states as every provider reports them.
PENDING = "pending"
RUNNING = "running"
STOPPING = "stopping"
STOPPED = "stopped"
TERMINATED = "terminated"
ALIVE_STATES = frozenset({PENDING, RUNNING})

# The built-in providers, used when the package runs from a source tree whose entry points
# are not installed. Installed entry points take precedence.
_BUILTIN: dict[str, str] = {
    "local": "federation.providers.local:LocalProvider",
    "onprem": "federation.providers.onprem:OnPremProvider",
    "aws": "federation.providers.aws:AWSProvider",
    "gcp": "federation.providers.gcp:GCPProvider",
}


@dataclass(frozen=True)
class InstanceType:
    """One shape a provider can sell in a pool, with its hourly prices.

    ``spot_price_per_hour`` is None when the type has no spot market there; ``available`` is
    the number that can still be had (on-prem hosts) or None for "as many as the quota allows".
    """

    name: str
    cpu_milli: int
    memory_mib: int
    gpu: int = 0
    price_per_hour: float = 0.0
    spot_price_per_hour: float | None = None
    zones: tuple[str, ...] = ()
    available: int | None = None

    def price(self, spot: bool) -> float | None:
        """Hourly price in the chosen market, None when that market does not exist."""
        return self.spot_price_per_hour if spot else self.price_per_hour


@dataclass(frozen=True)
class Bootstrap:
    """What a new machine needs to join the cluster: servers to reach and a join token."""

    servers: tuple[str, ...]
    join_token: str
    cluster: str = "federation"
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Instance:
    """An instance as the provider reports it; ``id`` is what ``terminate`` takes back."""

    id: str
    pool: str
    instance_type: str
    state: str
    zone: str | None = None
    spot: bool = False
    request_token: str | None = None
    address: str | None = None
    launched_at: float | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def alive(self) -> bool:
        return self.state in ALIVE_STATES


@dataclass(frozen=True)
class LaunchResult:
    """The outcome of one launch request: what exists for the token, and what could not be had.

    ``instances`` are all instances carrying the request token (including ones an earlier
    call with the same token created); ``failures`` explain a shortfall in plain words.
    """

    token: str
    requested: int
    instances: tuple[Instance, ...]
    failures: tuple[str, ...] = ()

    @property
    def shortfall(self) -> int:
        return max(0, self.requested - len(self.instances))


class Provider(ABC):
    """A source of nodes. Implementations follow these rules:

    * **Asynchronous.** ``launch`` returns once the provider has accepted the request; the
      instances may still be booting (state ``pending``). They become nodes when their agent
      registers with the servers, not when ``launch`` returns.
    * **Eventually consistent.** ``list_instances`` may lag behind ``launch`` and
      ``terminate``; callers reconcile against it over time instead of trusting one answer.
    * **Idempotent per request token.** Calling ``launch`` again with the same token never
      creates more than ``count`` instances for that token: it returns the instances the
      token already owns and only tops up what is missing. ``terminate`` of an instance that
      is already gone is not an error. The token is committed (through Raft) before the call,
      so a new leader can repeat the call safely.
    * **Tagged.** Every instance carries the cluster, pool and request token as tags or
      labels, so ``list_instances`` can find them without any local memory.
    * **Errors from the tree.** Foreign errors are translated at this boundary into
      :mod:`federation.errors`: ``CapacityError`` (no capacity of that kind there: move on),
      ``QuotaError`` (an account limit), ``AuthError`` (credentials refused),
      ``TransientError`` (throttling, 5xx: the provider already retried with backoff) and
      ``ProviderError`` for the rest. ``launch`` raises ``CapacityError`` only when it got
      nothing at all; a partial success is a :class:`LaunchResult` with a shortfall.
    * **Pool first.** Every call takes the pool spec, because region, zones, endpoints and
      credentials are settings of the pool, not of the provider.
    * **Cheap construction.** Constructing a provider performs no I/O and imports no cloud
      SDK; SDKs are imported on first use.
    """

    name: str = ""

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.config: dict[str, Any] = dict(config or {})

    def setting(self, pool: PoolSpec, key: str, default: Any = None) -> Any:
        """A pool setting, falling back to the provider's own configuration."""
        if key in pool.settings:
            return pool.settings[key]
        return self.config.get(key, default)

    @abstractmethod
    def catalog(self, pool: PoolSpec) -> list[InstanceType]:
        """The instance types this pool may buy, with shapes, prices and zones."""

    @abstractmethod
    def launch(
        self,
        pool: PoolSpec,
        instance_type: str,
        count: int,
        token: str,
        bootstrap: Bootstrap,
    ) -> LaunchResult:
        """Ask for ``count`` instances of ``instance_type``; idempotent per ``token``."""

    @abstractmethod
    def terminate(self, pool: PoolSpec, instance_ids: Sequence[str], token: str) -> None:
        """Release the given instances; ids that are already gone are ignored."""

    @abstractmethod
    def list_instances(self, pool: PoolSpec) -> list[Instance]:
        """Instances of this pool that are not terminated, as the provider sees them now."""


def select_types(pool: PoolSpec, types: Sequence[InstanceType]) -> list[InstanceType]:
    """Keep the types the pool allows: named ``instance_types`` or matching ``requirements``."""
    if pool.instance_types:
        wanted = {name: i for i, name in enumerate(pool.instance_types)}
        chosen = [t for t in types if t.name in wanted]
        return sorted(chosen, key=lambda t: wanted[t.name])
    req = pool.requirements
    if req is None:
        return list(types)
    return [t for t in types if req.admits(t.cpu_milli, t.memory_mib, t.gpu, t.name)]


_LABEL_BAD = re.compile(r"[^a-z0-9_-]")


def label_value(value: str) -> str:
    """A value usable as a GCE label and an EC2 tag: lowercase, [a-z0-9_-], at most 63."""
    return _LABEL_BAD.sub("-", value.lower())[:63]


def available_providers() -> dict[str, str]:
    """Provider names mapped to the ``module:attr`` that implements them."""
    found = dict(_BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ep.value
    return found


def load_provider(name: str, config: Mapping[str, Any] | None = None) -> Provider:
    """Instantiate the provider registered under ``name`` in ``federation.providers``.

    An installed entry point wins over the built-in table, so a plugin can also replace a
    built-in provider. Raises ``ProviderError`` for unknown names or broken plugins.
    """
    target: Any = None
    for ep in entry_points(group=ENTRY_POINT_GROUP, name=name):
        try:
            target = ep.load()
        except Exception as exc:  # a broken plugin must not take the server down
            raise ProviderError(f"provider plugin {name!r} failed to load: {exc}") from exc
        break
    if target is None:
        spec = _BUILTIN.get(name)
        if spec is None:
            known = ", ".join(sorted(available_providers()))
            raise ProviderError(f"unknown provider {name!r} (known: {known})", field="provider")
        module_name, _, attr = spec.partition(":")
        target = getattr(importlib.import_module(module_name), attr)
    provider = target(config) if callable(target) else target
    if not isinstance(provider, Provider):
        raise ProviderError(
            f"provider plugin {name!r} gave {type(provider).__name__}, not a Provider"
        )
    return provider
