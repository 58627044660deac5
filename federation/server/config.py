"""Configuration of one master, as given on the `federation server` command line."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from typing import Any

from federation.errors import ValidationError
from federation.raft.node import MIN_SECRET_LENGTH, RaftSettings
from federation.state.gc import Policy as GcPolicy


def split_host_port(value: str, flag: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValidationError(f"{flag} must be HOST:PORT, got {value!r}", field=flag)
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_secret_file(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            value = handle.read().strip()
    except OSError as exc:
        raise ValidationError(f"cannot read the {what} file {path!r}: {exc.strerror}") from None
    if not value:
        raise ValidationError(f"the {what} file {path!r} is empty")
    return value


@dataclass(frozen=True)
class GcSettings:
    """How often the leader collects finished work, and by what policy (federation.state.gc)."""

    interval: float = 60.0  # seconds; 0 disables collection
    policy: GcPolicy = field(default_factory=GcPolicy)


# Up to 1,666 nodes keep a 10 s TTL; 10,000 nodes are told 60 s.
DEFAULT_MAX_HEARTBEATS_PER_SECOND = 500.0

# API requests started per turn of a saturated server's event loop (federation.api.admission).
DEFAULT_REQUESTS_PER_TURN = 16


@dataclass
class ServerConfig:
    id: str
    data_dir: str
    http: str
    raft: str
    secret: str
    peers: list[str] = field(default_factory=list)
    token: str | None = None
    insecure: bool = False
    heartbeat_ttl: float = 10.0
    # A new leader judges no node before this long after gaining leadership (None: one TTL).
    heartbeat_grace: float | None = None
    # Heartbeats per second the cluster may receive in all: a larger cluster is told a
    # longer TTL (federation.server.liveness.rate_scaled_ttl); 0: the TTL is never scaled.
    max_heartbeats_per_second: float = DEFAULT_MAX_HEARTBEATS_PER_SECOND
    max_body_bytes: int = 1 << 20
    requests_per_turn: int = DEFAULT_REQUESTS_PER_TURN  # federation.api.admission
    raft_settings: RaftSettings = field(default_factory=RaftSettings)
    # Credentials and transport security (docs/security.md).
    join_token: str | None = None  # may only register nodes
    agent_networks: list[Any] = field(default_factory=list)  # ip_network objects
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None
    tls_verify_clients: bool = False  # require a client certificate signed by tls_ca
    gc: GcSettings = field(default_factory=GcSettings)

    def validate(self) -> None:
        """Refuse unsafe or inconsistent settings with a message that says what to do."""
        if not self.id or len(self.id) > 63:
            raise ValidationError("--id must be 1 to 63 characters", field="--id")
        http_host, _ = split_host_port(self.http, "--http")
        split_host_port(self.raft, "--raft")
        for peer in self.peers:
            split_host_port(peer, "--peers")
        if self.raft in self.peers:
            raise ValidationError("--peers must not include this server's own --raft address")
        if len(self.secret) < MIN_SECRET_LENGTH:
            raise ValidationError(
                f"the Raft secret must be at least {MIN_SECRET_LENGTH} characters "
                "(pysyncobj unpickles what it receives: an unauthenticated Raft port is remote "
                "code execution)", field="--secret-file",
            )
        if self.token is None and not is_loopback(http_host) and not self.insecure:
            raise ValidationError(
                f"refusing to serve the API on non-loopback address {self.http} without "
                "--token-file; pass --insecure to do it anyway", field="--token-file",
            )
        if self.join_token is not None and self.join_token == self.token:
            raise ValidationError("the join token must differ from the management token",
                                  field="--join-token-file")
        tls = (self.tls_cert, self.tls_key)
        if any(tls) and not all(tls):
            raise ValidationError("--tls-cert and --tls-key go together", field="--tls-cert")
        if self.tls_verify_clients and not self.tls_ca:
            raise ValidationError("--tls-verify-clients needs --tls-ca", field="--tls-ca")
        if self.gc.interval < 0 or self.gc.policy.job_age < 0 \
                or self.gc.policy.periodic_keep < 0 or self.gc.policy.allocs_per_job < 0:
            raise ValidationError("--gc-* settings cannot be negative", field="--gc-interval")
        if self.heartbeat_ttl <= 0:
            raise ValidationError("--heartbeat-ttl must be positive", field="--heartbeat-ttl")
        if self.heartbeat_grace is not None and self.heartbeat_grace < 0:
            raise ValidationError("--heartbeat-grace cannot be negative",
                                  field="--heartbeat-grace")
        if not 0 <= self.max_heartbeats_per_second <= 1_000_000:
            raise ValidationError("--max-heartbeats-per-second must be between 0 and 1000000",
                                  field="--max-heartbeats-per-second")
        if not 1 <= self.requests_per_turn <= 10_000:
            raise ValidationError("--requests-per-turn must be between 1 and 10000",
                                  field="--requests-per-turn")
        if not 1024 <= self.max_body_bytes <= 32 << 20:
            raise ValidationError("--max-body-bytes must be between 1024 and 33554432",
                                  field="--max-body-bytes")

    @property
    def http_url(self) -> str:
        host, port = split_host_port(self.http, "--http")
        if host in ("0.0.0.0", "::"):
            host = os.environ.get("FEDERATION_ADVERTISE_HOST", "127.0.0.1")
        scheme = "https" if self.tls_cert else "http"
        return f"{scheme}://{host}:{port}"
