"""The ``aws`` provider: EC2 instances tagged with cluster, pool and request token.

Catalog (shapes, zones, prices) lives in :mod:`.catalog`, EC2 calls in :mod:`.provision`;
boto3 is imported only when a pool is first used. Pool settings: ``image`` (AMI id, required
to launch), ``endpoint_url``, ``profile``, ``subnet`` or ``subnets`` (zone -> subnet id),
``security_groups``, ``instance_profile``, ``key_name``, ``prices`` (overrides),
``agent_install`` (shell command that installs the agent), ``cluster``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from federation.providers.aws import provision
from federation.providers.aws.catalog import Catalog
from federation.providers.base import Bootstrap, Instance, InstanceType, LaunchResult, Provider

if TYPE_CHECKING:
    from federation.specs.pool import PoolSpec


class AWSProvider(Provider):
    name = "aws"

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self._catalog = Catalog()
        self._clients: dict[tuple[Any, ...], Any] = {}

    def _ec2(self, pool: PoolSpec) -> Any:
        key = (pool.region, self.setting(pool, "endpoint_url"), self.setting(pool, "profile"))
        if key not in self._clients:
            self._clients[key] = provision.client(pool, self.config)
        return self._clients[key]

    def _cluster(self, pool: PoolSpec) -> str:
        return str(self.setting(pool, "cluster", "federation"))

    def catalog(self, pool: PoolSpec) -> list[InstanceType]:
        return self._catalog.types(pool, self._ec2(pool), provision.call)

    def launch(
        self, pool: PoolSpec, instance_type: str, count: int, token: str, bootstrap: Bootstrap
    ) -> LaunchResult:
        return provision.launch(
            self._ec2(pool), pool, instance_type, count, token, bootstrap,
            install=self.setting(pool, "agent_install"),
        )  # fmt: skip

    def terminate(self, pool: PoolSpec, instance_ids: Sequence[str], token: str) -> None:
        provision.terminate(self._ec2(pool), list(instance_ids))

    def list_instances(self, pool: PoolSpec) -> list[Instance]:
        return provision.list_instances(self._ec2(pool), pool, self._cluster(pool))
