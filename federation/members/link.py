"""The connector's side of federation: node registration, heartbeats and status reports go
through the public SDK (``federation.client.Client``) against this server's own API, exactly
as an agent's would; the work list is read from the local replica of the state (the connector
runs on the leader, which applies every committed placement).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from federation.client import Client

if TYPE_CHECKING:
    from federation.server.master import Master


class FederationLink:
    def __init__(self, master: Master) -> None:
        cfg = master.config
        self.master = master
        # The management token when there is one (a connector re-registers nodes another
        # leader registered); else the join credential, which may register nodes only.
        token = cfg.token or master.join_token
        self._local = threading.local()
        # One line per SDK request (hundreds of heartbeats a second) is noise in a server log.
        logging.getLogger("httpx").setLevel(max(logging.WARNING,
                                                logging.getLogger("httpx").level))
        self._options: dict[str, Any] = {
            "addresses": cfg.http_url, "token": token, "timeout": 5.0, "max_attempts": 3,
            "deadline": 10.0, "cacert": cfg.tls_ca or None}

    @property
    def client(self) -> Client:
        """One SDK client per thread (connection pools are not shared across threads)."""
        current = getattr(self._local, "client", None)
        if current is None:
            current = self._local.client = Client(**self._options)
        return current

    def node_token(self, registration_key: str) -> str:
        """The token the servers hand out for the registration made with this key."""
        return self.master.node_token(f"node-register:{registration_key}")

    def register(self, body: Mapping[str, Any], key: str,
                 node_token: str | None = None) -> tuple[str, str]:
        result = self.client.register_node(body, idempotency_key=key, node_token=node_token)
        return result["id"], result["token"]

    def heartbeat(self, node_id: str, token: str) -> None:
        self.client.heartbeat(node_id, token)

    def report(self, node_id: str, token: str, updates: Sequence[Mapping[str, Any]]) -> None:
        self.client.report_allocations(node_id, token, updates)

    def cluster_version(self, name: str) -> int | None:
        record = self.master.machine.clusters.get(name)
        return record.get("version") if record is not None else None

    def alloc_version(self) -> tuple[int, int]:
        """Moves whenever an allocation is written (heartbeats, which move the state index,
        do not move it)."""
        machine = self.master.machine
        return machine.alloc_epoch, sum(list(machine.alloc_writes.values()))

    def registered(self, name: str) -> dict[str, Any] | None:
        machine = self.master.machine
        node_id = machine.node_ids_by_name.get(name)
        return machine.nodes.get(node_id) if node_id else None

    def cluster_nodes(self, cluster: str) -> set[str]:
        """The ids of every federation node of a member cluster (whatever their status)."""
        return {n["id"] for n in list(self.master.machine.nodes.values())
                if n.get("provider") == "kubernetes" and n.get("cluster") == cluster}

    def allocations(self, node_ids: Collection[str]) -> list[dict[str, Any]]:
        """Every allocation placed on these nodes, as committed."""
        return [a for a in list(self.master.machine.allocations.values())
                if a["node_id"] in node_ids]

    def close(self) -> None:
        current = getattr(self._local, "client", None)
        if current is not None:
            current.close()
