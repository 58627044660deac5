"""The ``gcp`` provider: GCE instances labelled with cluster, pool and request token.

Catalog in :mod:`.catalog` (shipped table), API calls in :mod:`.provision`; the
google-cloud-compute library is imported only when a pool is first used. Pool settings:
``project`` (required), ``endpoint_url``, ``anonymous`` (no credentials, for emulators),
``image``, ``network``, ``subnetwork``, ``disk_gb``, ``service_account``, ``prices``,
``machine_types``, ``agent_install``, ``cluster``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from federation.errors import ProviderError
from federation.providers.base import Bootstrap, Instance, InstanceType, LaunchResult, Provider
from federation.providers.gcp import catalog, provision

if TYPE_CHECKING:
    from federation.specs.pool import PoolSpec


class GCPProvider(Provider):
    name = "gcp"

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self._clients: dict[tuple[Any, ...], provision.Clients] = {}

    def _api(self, pool: PoolSpec) -> tuple[provision.Clients, str]:
        project = self.setting(pool, "project")
        if not project:
            raise ProviderError(
                f"pool {pool.name}: settings.project is required", field="settings.project"
            )
        key = (self.setting(pool, "endpoint_url"), bool(self.setting(pool, "anonymous")))
        if key not in self._clients:
            self._clients[key] = provision.Clients({"endpoint_url": key[0], "anonymous": key[1]})
        return self._clients[key], str(project)

    def _cluster(self, pool: PoolSpec) -> str:
        return str(self.setting(pool, "cluster", "federation"))

    def catalog(self, pool: PoolSpec) -> list[InstanceType]:
        return catalog.machine_types(pool)

    def launch(
        self, pool: PoolSpec, instance_type: str, count: int, token: str, bootstrap: Bootstrap
    ) -> LaunchResult:
        clients, project = self._api(pool)
        return provision.launch(
            clients, pool, project, bootstrap.cluster, instance_type, count, token, bootstrap,
            install=self.setting(pool, "agent_install"),
        )  # fmt: skip

    def terminate(self, pool: PoolSpec, instance_ids: Sequence[str], token: str) -> None:
        clients, project = self._api(pool)
        provision.terminate(clients, project, list(instance_ids), token)

    def list_instances(self, pool: PoolSpec) -> list[Instance]:
        clients, project = self._api(pool)
        labels = {
            provision.LABEL_CLUSTER: provision.label_value(self._cluster(pool)),
            provision.LABEL_POOL: provision.label_value(pool.name),
        }
        return provision.list_instances(clients, pool, project, labels)
