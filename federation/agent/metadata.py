"""Who this machine is, read from its cloud's instance metadata service.

A cloud instance's agent (``federation agent --instance-metadata aws|gcp``) registers under
the instance id its provider lists it by, so the autoscaler can tell the node joined and can
terminate the right instance when it releases it. One boot script serves every instance of
a launch, so these per-instance values are read on the instance itself:

* ``aws``: EC2 IMDSv2 (``PUT /latest/api/token``, then ``GET /latest/meta-data/...`` with the
  token); the id is the EC2 instance id;
* ``gcp``: the GCE metadata server (``GET /computeMetadata/v1/instance/...`` with
  ``Metadata-Flavor: Google``); the id is ``<zone>/<name>``, as the gcp provider names it.

Each read has a short timeout; connection failures and 5xx answers are retried with jittered
backoff up to a deadline, anything else is final. What cannot be read is an error naming the
item and the service: the agent must not register under a wrong identity.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_random_exponential

from federation.errors import FederationError

CLOUDS = ("aws", "gcp")
URL_ENV = "FEDERATION_METADATA_URL"  # overrides the service's address (tests, proxies)
DEFAULT_URLS = {"aws": "http://169.254.169.254", "gcp": "http://metadata.google.internal"}
TOKEN_TTL_SECONDS = 300
_SERVICES = {"aws": "EC2 instance metadata service", "gcp": "GCE metadata server"}
_MAX_VALUE = 63  # zones, machine names and instance types all fit in a registration field


class MetadataUnavailable(FederationError):
    code = "metadata_unavailable"
    http_status = 503


class _Transient(Exception):
    """A failure worth another try: no answer, a timeout or a 5xx."""


@dataclass(frozen=True)
class InstanceIdentity:
    """The node attributes the metadata service gives; ``instance_id`` is the provider's id."""

    provider: str
    instance_id: str
    zone: str
    region: str
    instance_type: str

    def over(self, given: Mapping[str, str]) -> dict[str, str]:
        """These attributes, except where ``given`` has a non-empty value (given wins)."""
        found = {"provider": self.provider, "instance_id": self.instance_id, "zone": self.zone,
                 "region": self.region, "instance_type": self.instance_type}
        return {key: given.get(key) or value for key, value in found.items()}


class _Reader:
    """Reads one item at a time from a metadata service, retrying what is transient."""

    def __init__(self, cloud: str, base_url: str, timeout: float, deadline: float) -> None:
        self.cloud = cloud
        self.base_url = base_url.rstrip("/")
        self.deadline = deadline
        # Never through an HTTP proxy from the environment: the service is link-local.
        self.http = httpx.Client(timeout=timeout, trust_env=False, follow_redirects=False)
        self.aws_token: str | None = None

    def close(self) -> None:
        self.http.close()

    def _once(self, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
        try:
            response = self.http.request(method, self.base_url + path, headers=headers)
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise _Transient(f"no answer ({exc or type(exc).__name__})") from exc
        if response.status_code >= 500:
            raise _Transient(f"HTTP {response.status_code}")
        return response

    def fetch(self, what: str, method: str, path: str, headers: dict[str, str]) -> str:
        """The body of one answer; ``what`` names the item in errors."""
        retrying = Retrying(
            retry=retry_if_exception_type(_Transient),
            wait=wait_random_exponential(multiplier=0.1, max=2.0),
            stop=stop_after_delay(self.deadline),
            reraise=True,
        )
        where = f"{what} ({self.base_url}{path}) from the {_SERVICES[self.cloud]}"
        try:
            response = retrying(self._once, method, path, headers)
        except _Transient as exc:
            raise MetadataUnavailable(
                f"cannot read {where}: {exc}, still after {self.deadline:g}s") from None
        if response.status_code != 200:
            raise MetadataUnavailable(f"cannot read {where}: HTTP {response.status_code}")
        if self.cloud == "gcp" and response.headers.get("Metadata-Flavor") != "Google":
            raise MetadataUnavailable(
                f"cannot read {where}: the answer lacks 'Metadata-Flavor: Google', so it is "
                "not from the metadata server")
        value = response.text.strip()
        if not value or len(value) > 255 or any(c.isspace() for c in value):
            raise MetadataUnavailable(f"cannot read {where}: unexpected answer {value[:80]!r}")
        return value

    def aws(self, item: str) -> str:
        if self.aws_token is None:
            self.aws_token = self.fetch(
                "an IMDSv2 session token", "PUT", "/latest/api/token",
                {"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_SECONDS)})
        return self.fetch(item, "GET", f"/latest/meta-data/{item}",
                          {"X-aws-ec2-metadata-token": self.aws_token})

    def gcp(self, item: str) -> str:
        value = self.fetch(item, "GET", f"/computeMetadata/v1/instance/{item}",
                           {"Metadata-Flavor": "Google"})
        # zone and machine-type come as paths (projects/N/zones/ZONE): keep the last part
        return value.rsplit("/", 1)[-1]


def _short(value: str, what: str, cloud: str) -> str:
    if not value or len(value) > _MAX_VALUE:
        raise MetadataUnavailable(f"the {_SERVICES[cloud]} gave an unusable {what}: {value!r}")
    return value


def discover(cloud: str, base_url: str | None = None, *, timeout: float = 2.0,
             deadline: float = 30.0) -> InstanceIdentity:
    """This instance's identity from ``cloud``'s metadata service.

    ``base_url`` defaults to ``$FEDERATION_METADATA_URL``, else the cloud's own address.
    ``timeout`` bounds one request, ``deadline`` the retries of one item.
    """
    if cloud not in CLOUDS:
        raise FederationError(f"instance metadata: unknown cloud {cloud!r} "
                              f"(one of {', '.join(CLOUDS)})", field="instance_metadata")
    reader = _Reader(cloud, base_url or os.environ.get(URL_ENV) or DEFAULT_URLS[cloud],
                     timeout, deadline)
    try:
        if cloud == "aws":
            instance_id = _short(reader.aws("instance-id"), "instance-id", cloud)
            zone = _short(reader.aws("placement/availability-zone"), "availability-zone", cloud)
            region = _short(reader.aws("placement/region"), "region", cloud)
            instance_type = _short(reader.aws("instance-type"), "instance-type", cloud)
        else:
            name = _short(reader.gcp("name"), "name", cloud)
            zone = _short(reader.gcp("zone"), "zone", cloud)
            instance_type = _short(reader.gcp("machine-type"), "machine-type", cloud)
            instance_id = f"{zone}/{name}"  # what federation.providers.gcp lists it by
            region = zone.rsplit("-", 1)[0]
    finally:
        reader.close()
    return InstanceIdentity(cloud, instance_id, zone, region, instance_type)
