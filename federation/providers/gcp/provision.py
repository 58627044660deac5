"""GCE calls for a pool through google-cloud-compute's REST transport (imported lazily).

Inserts carry ``requestId`` derived from the request token and deterministic instance names,
so a repeated launch creates nothing twice. Operations are awaited with our own
``ZoneOperationsClient`` built with the same client options (``operation.result()`` would poll
Google's public endpoint). ``ZONE_RESOURCE_POOL_EXHAUSTED`` moves the launch to the next zone.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from federation.errors import (
    AuthError,
    CapacityError,
    ProviderError,
    QuotaError,
    TransientError,
)
from federation.providers.base import (
    PENDING,
    RUNNING,
    STOPPED,
    STOPPING,
    Bootstrap,
    Instance,
    LaunchResult,
    label_value,
)
from federation.providers.bootstrap import agent_script
from federation.providers.gcp.catalog import zones_of

if TYPE_CHECKING:
    from federation.specs.pool import PoolSpec

LABEL_CLUSTER = "federation-cluster"
LABEL_POOL = "federation-pool"
LABEL_REQUEST = "federation-request"
CAPACITY_CODES = frozenset({
    "ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
    "RESOURCE_POOL_EXHAUSTED", "UNSUPPORTED_OPERATION",
})  # fmt: skip
QUOTA_CODES = frozenset({"QUOTA_EXCEEDED", "QUOTA_LIMIT"})
_NS = uuid.UUID("6f1c0a52-7d8e-4c55-9a53-1d2f4b7e9c10")
_STATES = {
    "PROVISIONING": PENDING, "STAGING": PENDING, "RUNNING": RUNNING, "STOPPING": STOPPING,
    "SUSPENDING": STOPPING, "SUSPENDED": STOPPED, "TERMINATED": STOPPED,
}  # fmt: skip
_OP_TIMEOUT = 300.0


def translate(exc: Exception) -> ProviderError:
    """A google.api_core exception as an error of the project's tree."""
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    if isinstance(exc, ProviderError):
        return exc
    text = f"GCE: {exc}"
    if isinstance(exc, gexc.Unauthenticated | gexc.Forbidden | auth_exc.GoogleAuthError):
        if "quota" in str(exc).lower():
            return QuotaError(text)
        return AuthError(text)
    if isinstance(exc, gexc.TooManyRequests):
        return QuotaError(text) if "quota" in str(exc).lower() else TransientError(text)
    if isinstance(exc, gexc.ServerError | gexc.RetryError):
        return TransientError(text)
    if isinstance(exc, gexc.GoogleAPICallError):
        return ProviderError(text, http_code=getattr(exc, "code", None))
    if isinstance(exc, ConnectionError | TimeoutError):
        return TransientError(text)
    return ProviderError(text)


@retry(
    retry=retry_if_exception_type(TransientError),
    wait=wait_random_exponential(multiplier=0.2, max=5),
    stop=stop_after_attempt(5),
    reraise=True,
)
def call(fn: Callable[..., Any], **kwargs: Any) -> Any:
    try:
        return fn(**kwargs)
    except Exception as exc:
        raise translate(exc) from exc


class Clients:
    """An instances client and a zone-operations client sharing the pool's options."""

    def __init__(self, settings: dict[str, Any]) -> None:
        from google.cloud import compute_v1

        options: dict[str, Any] = {}
        if settings.get("endpoint_url"):
            options["api_endpoint"] = settings["endpoint_url"]
        credentials = None
        if settings.get("anonymous"):
            from google.auth.credentials import AnonymousCredentials

            credentials = AnonymousCredentials()
        kwargs: dict[str, Any] = {
            "credentials": credentials,
            "client_options": options or None,
            "transport": "rest",
        }
        self.compute = compute_v1
        self.instances = compute_v1.InstancesClient(**kwargs)
        self.operations = compute_v1.ZoneOperationsClient(**kwargs)


def wait(clients: Clients, project: str, zone: str, op: Any) -> Any:
    """Wait for a zone operation to finish (bounded), with our own operations client."""
    deadline = time.monotonic() + _OP_TIMEOUT
    while getattr(op.status, "name", op.status) != "DONE":
        if time.monotonic() > deadline:
            raise TransientError(f"GCE operation {op.name} still running after {_OP_TIMEOUT}s")
        op = call(
            clients.operations.wait,
            request={"project": project, "zone": zone, "operation": op.name},
        )
    return op


def op_error(op: Any) -> ProviderError | None:
    """The error an operation finished with, translated; None when it succeeded."""
    errors = list(op.error.errors) if op.error else []
    if not errors:
        return None
    first = errors[0]
    message = f"GCE {op.operation_type}: {first.code}: {first.message}"
    if first.code in CAPACITY_CODES:
        return CapacityError(message, gce_code=first.code)
    if first.code in QUOTA_CODES:
        return QuotaError(message, gce_code=first.code)
    return ProviderError(message, gce_code=first.code)


def instance_name(pool: PoolSpec, token: str, index: int) -> str:
    digest = hashlib.sha256(token.encode()).hexdigest()[:10]
    return f"fed-{label_value(pool.name)[:36].strip('-_')}-{digest}-{index}".replace("_", "-")


def to_instance(pool: PoolSpec, zone: str, raw: Any) -> Instance:
    labels = dict(raw.labels)
    nics = list(raw.network_interfaces)
    return Instance(
        id=f"{zone}/{raw.name}",
        pool=pool.name,
        instance_type=raw.machine_type.rsplit("/", 1)[-1],
        state=_STATES.get(str(raw.status), PENDING),
        zone=zone,
        spot=raw.scheduling.provisioning_model == "SPOT" if raw.scheduling else False,
        request_token=labels.get(LABEL_REQUEST),
        address=nics[0].network_i_p if nics else None,
        labels=labels,
    )


def list_instances(
    clients: Clients, pool: PoolSpec, project: str, labels: dict[str, str]
) -> list[Instance]:
    expr = " ".join(f'(labels.{k} = "{v}")' for k, v in sorted(labels.items()))
    out: list[Instance] = []
    for zone in zones_of(pool):
        pager = call(
            clients.instances.list,
            request={"project": project, "zone": zone, "filter": expr},
        )
        try:
            out.extend(to_instance(pool, zone, raw) for raw in pager)
        except Exception as exc:
            raise translate(exc) from exc
    return out


def _body(
    clients: Clients,
    pool: PoolSpec,
    zone: str,
    name: str,
    instance_type: str,
    labels: dict[str, str],
    script: str,
    spot: bool,
) -> Any:
    c = clients.compute
    settings = pool.settings
    nic = c.NetworkInterface(network=settings.get("network", "global/networks/default"))
    if settings.get("subnetwork"):
        nic.subnetwork = settings["subnetwork"]
    disk = c.AttachedDisk(
        boot=True, auto_delete=True,
        initialize_params=c.AttachedDiskInitializeParams(
            source_image=settings.get("image", "projects/debian-cloud/global/images/family/"
                                               "debian-12"),
            disk_size_gb=int(settings.get("disk_gb", 20)),
        ),
    )  # fmt: skip
    inst = c.Instance(
        name=name,
        machine_type=f"zones/{zone}/machineTypes/{instance_type}",
        labels=labels,
        metadata=c.Metadata(items=[c.Items(key="startup-script", value=script)]),
        disks=[disk],
        network_interfaces=[nic],
    )
    if spot:
        inst.scheduling = c.Scheduling(
            provisioning_model="SPOT", instance_termination_action="DELETE"
        )
    if settings.get("service_account"):
        inst.service_accounts = [
            c.ServiceAccount(
                email=settings["service_account"],
                scopes=["https://www.googleapis.com/auth/cloud-platform"],
            )
        ]
    return inst


def launch(
    clients: Clients,
    pool: PoolSpec,
    project: str,
    cluster: str,
    instance_type: str,
    count: int,
    token: str,
    bootstrap: Bootstrap,
    install: str | None = None,
) -> LaunchResult:
    labels = {
        LABEL_CLUSTER: label_value(cluster),
        LABEL_POOL: label_value(pool.name),
        LABEL_REQUEST: label_value(token),
    }
    have = {
        i.id.split("/", 1)[1]: i
        for i in list_instances(
            clients,
            pool,
            project,
            {LABEL_REQUEST: labels[LABEL_REQUEST], LABEL_POOL: labels[LABEL_POOL]},
        )
    }
    script = agent_script(pool, bootstrap, install, instance_metadata="gcp")
    markets = {"never": [False], "prefer": [True, False], "only": [True]}[pool.spot]
    options = [(spot, zone) for spot in markets for zone in zones_of(pool)]
    dead: set[tuple[bool, str]] = set()
    failures: list[str] = []
    last: ProviderError | None = None
    for index in range(count):
        name = instance_name(pool, token, index)
        if name in have:
            continue
        for spot, zone in options:
            if (spot, zone) in dead:
                continue
            request_id = str(uuid.uuid5(_NS, f"{token}/{zone}/{name}/{spot}"))
            body = _body(clients, pool, zone, name, instance_type, labels, script, spot)
            try:
                op = call(
                    clients.instances.insert_unary,
                    request={
                        "project": project,
                        "zone": zone,
                        "instance_resource": body,
                        "request_id": request_id,
                    },
                )
                err = op_error(wait(clients, project, zone, op))
            except ProviderError as exc:
                if exc.details.get("http_code") != 409:
                    raise
                err = None  # already exists: an earlier call created it
            if err is None:
                raw = call(
                    clients.instances.get,
                    request={"project": project, "zone": zone, "instance": name},
                )
                have[name] = to_instance(pool, zone, raw)
                break
            if isinstance(err, CapacityError | QuotaError):
                dead.add((spot, zone))
                failures.append(
                    f"{instance_type} {'spot' if spot else 'standard'} in {zone}: {err.message}"
                )
                last = err
                continue
            raise err
    if not have:
        raise last or CapacityError(f"no {instance_type} could be created in pool {pool.name}")
    return LaunchResult(token, count, tuple(have.values()), tuple(failures))


def terminate(clients: Clients, project: str, ids: Sequence[str], token: str) -> None:
    for iid in ids:
        zone, _, name = iid.partition("/")
        if not name:
            raise ProviderError(f"{iid!r} is not a GCE instance id of the form zone/name")
        request_id = str(uuid.uuid5(_NS, f"delete/{token}/{iid}"))
        try:
            op = call(
                clients.instances.delete_unary,
                request={
                    "project": project,
                    "zone": zone,
                    "instance": name,
                    "request_id": request_id,
                },
            )
        except ProviderError as exc:
            if exc.details.get("http_code") == 404:
                continue
            raise
        err = op_error(wait(clients, project, zone, op))
        if err is not None:
            raise err
