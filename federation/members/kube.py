"""A member cluster's API, through the official ``kubernetes`` client.

Objects travel as plain JSON dicts (``_preload_content=False``): the connector reads a few
fields of thousands of pods, and the client's model classes would cost more than the rest of
the work. Watches are read line by line from the client's own response (``iter_resp_lines``)
so that ``BOOKMARK`` and ``ERROR`` (410 ``Expired``) events reach the caller, who resumes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.watch.watch import iter_resp_lines

from federation.errors import FederationError

REQUEST_TIMEOUT = 10.0


class KubeError(FederationError):
    code = "member_cluster_error"
    http_status = 502


class KubeAPI:
    def __init__(self, kubeconfig: str, context: str | None = None, pool_size: int = 16):
        from federation.members.kubeconfig import parse

        parse(kubeconfig, context)  # again here: a record from before a rule was added
        cfg = client.Configuration()
        try:
            config.load_kube_config_from_dict(
                yaml.safe_load(kubeconfig), context=context, client_configuration=cfg,
                persist_config=False)
        except (config.ConfigException, yaml.YAMLError, TypeError, ValueError) as exc:
            raise KubeError(f"the kubeconfig cannot be used: {exc}") from None
        cfg.connection_pool_maxsize = pool_size
        cfg.retries = 1
        self.api = client.ApiClient(cfg)
        self.v1 = client.CoreV1Api(self.api)

    def close(self) -> None:
        self.api.close()

    def ping(self) -> None:
        resp: Any = client.VersionApi(self.api).get_code(_preload_content=False,
                                                         _request_timeout=3)
        resp.release_conn()

    def _lister(self, kind: str) -> Any:
        return self.v1.list_node if kind == "nodes" else self.v1.list_pod_for_all_namespaces

    def list(self, kind: str) -> tuple[list[dict[str, Any]], str]:
        resp = self._lister(kind)(_preload_content=False, _request_timeout=REQUEST_TIMEOUT)
        data = json.loads(resp.data)
        return list(data.get("items") or []), str(data["metadata"]["resourceVersion"])

    def watch(self, kind: str, resource_version: str, timeout: int) -> Iterator[dict[str, Any]]:
        resp = self._lister(kind)(
            watch=True, resource_version=resource_version, allow_watch_bookmarks=True,
            timeout_seconds=timeout, _preload_content=False,
            _request_timeout=(5, timeout + 10))
        try:
            for line in iter_resp_lines(resp):
                if line:
                    yield json.loads(line)
        finally:
            resp.close()
            resp.release_conn()

    def create_pod(self, body: dict[str, Any]) -> bool:
        """Create a pod; False when it exists already (a create that was retried)."""
        try:
            self.v1.create_namespaced_pod(body["metadata"]["namespace"], body,  # type: ignore[arg-type]
                                          _preload_content=False,
                                          _request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def delete_pod(self, namespace: str, name: str) -> bool:
        """Delete a pod; False when it was gone already."""
        try:
            self.v1.delete_namespaced_pod(name, namespace, _preload_content=False,
                                          _request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def pod_log(self, namespace: str, name: str) -> bytes:
        resp: Any = self.v1.read_namespaced_pod_log(name, namespace, _preload_content=False,
                                                    _request_timeout=30)
        return bytes(resp.data)
