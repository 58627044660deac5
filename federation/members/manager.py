"""Leader loop: one connector per registered member cluster.

The connectors run on the leader, because the leader is where the kubeconfigs can be unsealed
without ever leaving the servers and where placements are known as soon as they commit. A
cluster added starts a connector; one replaced (a new kubeconfig, pool or labels) restarts
it; one removed stops it after deleting the pods it made. Losing leadership stops them all:
the new leader's connectors list the clusters again and adopt the pods they find.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from federation.members.connector import Connector
from federation.members.link import FederationLink
from federation.members.sealing import Sealer

if TYPE_CHECKING:
    from federation.server.master import Master

log = logging.getLogger("federation.members")
CHECK_PERIOD = 1.0
WARM_UP_CHECK = 2.0  # how often a server without members looks for one


def start_connector(master: Master, record: dict[str, Any], link: FederationLink) -> Connector:
    try:
        from federation.members.kube import KubeAPI
    except ImportError:
        raise RuntimeError("member clusters need the kubernetes client: install "
                           "federation[kubernetes]") from None
    kubeconfig = Sealer(master.config.secret).unseal(record["kubeconfig_sealed"])
    kube = KubeAPI(kubeconfig, record.get("context"))
    return Connector(record, kube, link, master.config.heartbeat_ttl).start()


_WARM_UP_KUBECONFIG = (
    '{"apiVersion": "v1", "kind": "Config", "current-context": "w", "clusters": [{"name": '
    '"w", "cluster": {"server": "https://127.0.0.1:1"}}], "users": [{"name": "w", "user": '
    '{"token": "-"}}], "contexts": [{"name": "w", "context": {"cluster": "w", "user": "w"}}]}')


def _warm_up(master: Master, stop: threading.Event) -> None:
    """Import and set up the kubernetes client once the cluster has a member, ahead of a
    leader's connectors: a server of a cluster without members never pays for it."""
    while True:
        try:
            if master.raft is not None and master.machine.clusters:
                break
        except Exception:  # noqa: BLE001 - the server is starting
            pass
        if stop.wait(WARM_UP_CHECK):
            return
    try:
        from federation.members.kube import KubeAPI

        KubeAPI(_WARM_UP_KUBECONFIG).close()  # no request is sent
    except Exception:  # noqa: BLE001 - only a head start; a real start reports errors
        pass


def member_clusters_loop(master: Master) -> Callable[[threading.Event], None]:
    # The kubernetes client takes a second or two to import and set up its first client: done
    # in the background on every server once a member is registered, so that a new leader's
    # connectors do not spend it while their nodes' TTL runs.
    threading.Thread(target=_warm_up, args=(master, master.stopping), name="member-warm-up",
                     daemon=True).start()

    def loop(stop: threading.Event) -> None:
        link = FederationLink(master)
        running: dict[str, tuple[int, Connector]] = {}
        failed: dict[str, int] = {}  # the version that could not start: not tried again
        try:
            while not stop.is_set():
                records = dict(master.machine.clusters)
                for name, (version, connector) in list(running.items()):
                    record = records.get(name)
                    if record is None or record["version"] != version:
                        if record is None:
                            removed = connector.remove_pods()
                            log.info("member %s removed: %d pods deleted", name, removed)
                        connector.stop()
                        del running[name]
                for name, record in records.items():
                    if name in running or failed.get(name) == record["version"] \
                            or stop.is_set():
                        continue
                    try:
                        running[name] = (record["version"],
                                         start_connector(master, record, link))
                        log.info("member %s: connector started (%s)", name, record["server"])
                    except Exception as exc:  # noqa: BLE001 - one cluster's failure is its own
                        failed[name] = record["version"]
                        log.warning("member %s: cannot start its connector: %s", name, exc)
                stop.wait(CHECK_PERIOD)
        finally:
            for _, connector in running.values():
                connector.stop()
            link.close()
    return loop
