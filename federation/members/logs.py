"""An allocation's output on a member cluster: its pod's log, read by any server.

Every server can unseal the member's kubeconfig, so the server a user asks reads the pod's
log itself (``pods/log``); no agent endpoint is involved. The log is the container's
combined output, as Kubernetes keeps it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from federation.errors import NotFound
from federation.members import translate
from federation.members.kube import KubeAPI, KubeError
from federation.members.sealing import Sealer

if TYPE_CHECKING:
    from federation.server.master import Master

_clients: dict[tuple[str, int], KubeAPI] = {}
_lock = threading.Lock()


def _api(master: Master, record: dict[str, Any]) -> KubeAPI:
    key = (record["name"], record["version"])
    with _lock:
        api = _clients.get(key)
        if api is None:
            for old in [k for k in _clients if k[0] == record["name"]]:
                _clients.pop(old).close()
            kubeconfig = Sealer(master.config.secret).unseal(record["kubeconfig_sealed"])
            api = _clients[key] = KubeAPI(kubeconfig, record.get("context"), pool_size=4)
        return api


def pod_log(master: Master, node: dict[str, Any], alloc: dict[str, Any], offset: int) -> bytes:
    """The pod's log from byte ``offset`` (negative: that many bytes before the end)."""
    from kubernetes.client.rest import ApiException

    record = master.machine.clusters.get(str(node.get("cluster")))
    if record is None:
        raise NotFound(f"member cluster {node.get('cluster')!r} is not registered")
    try:
        data = _api(master, record).pod_log(translate.POD_NAMESPACE,
                                            translate.pod_name(str(alloc["id"])))
    except ApiException as exc:
        if exc.status == 404:
            raise NotFound(f"no pod for allocation {alloc['id']!r} in member cluster "
                           f"{record['name']!r}") from None
        raise KubeError(f"member cluster {record['name']!r} answered {exc.status}") from None
    except Exception as exc:  # noqa: BLE001 - unreachable member: a 502 naming it
        raise KubeError(f"member cluster {record['name']!r} did not answer: {exc}") from None
    return data[offset:]
