"""EC2 calls for a pool: launch (idempotent per request token), terminate, list by tags.

boto3 is imported on first use. Throttling and 5xx are retried here with jittered backoff;
capacity and quota errors are final and move the launch on to the next zone or market.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from tenacity import (
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

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
    TERMINATED,
    Bootstrap,
    Instance,
    LaunchResult,
)
from federation.providers.bootstrap import agent_script

if TYPE_CHECKING:
    from federation.specs.pool import PoolSpec

TAG_CLUSTER = "federation:cluster"
TAG_POOL = "federation:pool"
TAG_REQUEST = "federation:request"

CAPACITY_CODES = frozenset({
    "InsufficientInstanceCapacity", "InsufficientHostCapacity", "InsufficientCapacity",
    "InsufficientReservedInstanceCapacity", "SpotMaxPriceTooLow",
    "InsufficientFreeAddressesInSubnet", "Unsupported", "UnfulfillableCapacity",
    "CapacityNotAvailable",
})  # fmt: skip
QUOTA_CODES = frozenset({
    "InstanceLimitExceeded", "VcpuLimitExceeded", "MaxSpotInstanceCountExceeded",
    "SpotInstanceCountLimitExceeded", "ResourceLimitExceeded",
})  # fmt: skip
AUTH_CODES = frozenset({
    "AuthFailure", "UnauthorizedOperation", "InvalidClientTokenId", "SignatureDoesNotMatch",
    "ExpiredToken", "AccessDenied", "AccessDeniedException", "OptInRequired",
})  # fmt: skip
TRANSIENT_CODES = frozenset({
    "RequestLimitExceeded", "Throttling", "ThrottlingException", "InternalError",
    "InternalFailure", "ServiceUnavailable", "Unavailable", "RequestTimeout",
})  # fmt: skip
_STATES = {
    "pending": PENDING, "running": RUNNING, "shutting-down": STOPPING, "stopping": STOPPING,
    "stopped": STOPPED, "terminated": TERMINATED,
}  # fmt: skip
_LIVE_FILTER = {
    "Name": "instance-state-name",
    "Values": ["pending", "running", "stopping", "stopped"],
}


def translate(exc: Exception) -> ProviderError:
    """A botocore exception as an error of the project's tree."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        NoCredentialsError,
    )
    from botocore.exceptions import (
        ConnectionError as BotoConnectionError,
    )

    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        message = f"EC2 {exc.operation_name}: {code}: {err.get('Message', '')}"
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in CAPACITY_CODES:
            return CapacityError(message, aws_code=code)
        if code in QUOTA_CODES:
            return QuotaError(message, aws_code=code)
        if code in AUTH_CODES or status in (401, 403):
            return AuthError(message, aws_code=code)
        if code in TRANSIENT_CODES or status >= 500:
            return TransientError(message, aws_code=code)
        return ProviderError(message, aws_code=code)
    if isinstance(exc, NoCredentialsError):
        return AuthError(f"EC2: {exc}")
    if isinstance(exc, BotoConnectionError):
        return TransientError(f"EC2 connection: {exc}")
    if isinstance(exc, BotoCoreError):
        return ProviderError(f"EC2: {exc}")
    return ProviderError(f"EC2: {exc}")


@retry(
    retry=retry_if_exception_type(TransientError),
    wait=wait_random_exponential(multiplier=0.2, max=5),
    stop=stop_after_attempt(5),
    reraise=True,
)
def call(fn: Callable[..., Any], pagination: bool = False, **kwargs: Any) -> Any:
    """One EC2 call (or a whole pagination) with errors translated and transients retried."""
    try:
        result = fn(**kwargs)
        return list(result) if pagination else result
    except Exception as exc:
        raise translate(exc) from exc


def client(pool: PoolSpec, config: dict[str, Any]) -> Any:
    """An EC2 client for the pool; SDK retries off, since ``call`` decides what to retry."""
    import boto3
    from botocore.config import Config

    settings = {**config, **pool.settings}
    session = boto3.session.Session(profile_name=settings.get("profile"), region_name=pool.region)
    return session.client(
        "ec2",
        endpoint_url=settings.get("endpoint_url"),
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30),
    )


def _tag(tags: Iterable[dict[str, str]] | None, key: str) -> str | None:
    for t in tags or ():
        if t.get("Key") == key:
            return t.get("Value")
    return None


def to_instance(pool: PoolSpec, raw: dict[str, Any]) -> Instance:
    launched = raw.get("LaunchTime")
    tags = raw.get("Tags", [])
    return Instance(
        id=raw["InstanceId"],
        pool=pool.name,
        instance_type=raw["InstanceType"],
        state=_STATES.get(raw.get("State", {}).get("Name", ""), PENDING),
        zone=raw.get("Placement", {}).get("AvailabilityZone"),
        spot=raw.get("InstanceLifecycle") == "spot",
        request_token=_tag(tags, TAG_REQUEST),
        address=raw.get("PrivateIpAddress"),
        launched_at=launched.timestamp() if launched is not None and hasattr(
            launched, "timestamp") else None,
        labels={t["Key"]: t["Value"] for t in tags},
    )


def describe(ec2: Any, pool: PoolSpec, filters: list[dict[str, Any]]) -> list[Instance]:
    pages = call(ec2.get_paginator("describe_instances").paginate, Filters=filters, pagination=True)
    return [
        to_instance(pool, inst)
        for page in pages
        for res in page.get("Reservations", [])
        for inst in res.get("Instances", [])
    ]


def list_instances(ec2: Any, pool: PoolSpec, cluster: str) -> list[Instance]:
    return describe(ec2, pool, [
        {"Name": f"tag:{TAG_CLUSTER}", "Values": [cluster]},
        {"Name": f"tag:{TAG_POOL}", "Values": [pool.name]},
        _LIVE_FILTER,
    ])  # fmt: skip


def client_token(token: str, zone: str | None, spot: bool, have: int) -> str:
    """The EC2 ClientToken (<= 64 characters) of one attempt of a request.

    It varies with the zone, the market and how many the request already has, so a new
    attempt is a new call, while repeating the same attempt is deduplicated by EC2.
    """
    raw = f"{token}|{zone}|{'spot' if spot else 'on-demand'}|{have}"
    return "fed-" + hashlib.sha256(raw.encode()).hexdigest()[:56]


def markets(pool: PoolSpec) -> list[bool]:
    """Markets to try in order: spot first when allowed, on-demand unless spot only."""
    return {"never": [False], "prefer": [True, False], "only": [True]}[pool.spot]


def launch(
    ec2: Any,
    pool: PoolSpec,
    instance_type: str,
    count: int,
    token: str,
    bootstrap: Bootstrap,
    install: str | None = None,
) -> LaunchResult:
    """Launch until ``count`` instances carry ``token``, over zones and markets in order."""
    settings = pool.settings
    image = settings.get("image")
    if not image:
        raise ProviderError(
            f"pool {pool.name}: settings.image (an AMI id) is required", field="settings.image"
        )
    have = describe(ec2, pool, [{"Name": f"tag:{TAG_REQUEST}", "Values": [token]}, _LIVE_FILTER])
    failures: list[str] = []
    last: ProviderError | None = None
    user_data = agent_script(pool, bootstrap, install, instance_metadata="aws")
    tags = [
        {"Key": TAG_CLUSTER, "Value": bootstrap.cluster},
        {"Key": TAG_POOL, "Value": pool.name},
        {"Key": TAG_REQUEST, "Value": token},
        {"Key": "Name", "Value": f"{bootstrap.cluster}-{pool.name}"},
    ]
    for spot in markets(pool):
        zones: list[str | None] = list(pool.zones) or [None]
        for zone in zones:
            need = count - len(have)
            if need <= 0:
                break
            params: dict[str, Any] = {
                "ImageId": image,
                "InstanceType": instance_type,
                "MinCount": need,
                "MaxCount": need,
                "ClientToken": client_token(token, zone, spot, len(have)),
                "UserData": user_data,
                "TagSpecifications": [{"ResourceType": "instance", "Tags": tags}],
            }
            subnet = (settings.get("subnets") or {}).get(zone) or settings.get("subnet")
            if subnet:
                params["SubnetId"] = subnet
            elif zone:
                params["Placement"] = {"AvailabilityZone": zone}
            if settings.get("security_groups"):
                params["SecurityGroupIds"] = list(settings["security_groups"])
            if settings.get("instance_profile"):
                params["IamInstanceProfile"] = {"Name": settings["instance_profile"]}
            if settings.get("key_name"):
                params["KeyName"] = settings["key_name"]
            if spot:
                params["InstanceMarketOptions"] = {
                    "MarketType": "spot",
                    "SpotOptions": {
                        "SpotInstanceType": "one-time",
                        "InstanceInterruptionBehavior": "terminate",
                    },
                }
            try:
                out = call(ec2.run_instances, **params)
            except (CapacityError, QuotaError) as exc:
                market = "spot" if spot else "on-demand"
                failures.append(f"{instance_type} {market} in {zone or pool.region}: {exc}")
                last = exc
                continue
            have = have + [to_instance(pool, raw) for raw in out.get("Instances", [])]
    if not have:
        raise last or CapacityError(f"no {instance_type} could be launched in pool {pool.name}")
    return LaunchResult(token, count, tuple(have), tuple(failures))


def terminate(ec2: Any, ids: Sequence[str]) -> None:
    """Terminate instances; ids that no longer exist are skipped."""
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        try:
            call(ec2.terminate_instances, InstanceIds=chunk)
        except ProviderError as exc:
            if exc.details.get("aws_code") not in (
                "InvalidInstanceID.NotFound",
                "InvalidInstanceID.Malformed",
            ):
                raise
            for one in chunk:  # one bad id fails the whole call: go one by one
                try:
                    call(ec2.terminate_instances, InstanceIds=[one])
                except ProviderError as inner:
                    if inner.details.get("aws_code") != "InvalidInstanceID.NotFound":
                        raise
