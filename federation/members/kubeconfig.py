"""Reading a member cluster's kubeconfig (pure): the context to use and its API server.

The whole file is kept (sealed); this module only checks that it is a kubeconfig holding the
context asked for, and names the server it points at, so a bad file is refused when the
cluster is added rather than when the connector first dials it.

The servers act on it, so it must be self-contained: credentials and certificates inline
(``token``, ``client-certificate-data``, ``certificate-authority-data``, ...). A user that
runs a command (``exec``, an ``auth-provider``) or a path to a file on the server
(``tokenFile``, ``client-certificate``, ``certificate-authority``, ...) is refused: whoever
may add a cluster must not be able to run programs or read files on the servers.
"""

from __future__ import annotations

from typing import Any

import yaml

from federation.errors import ValidationError

MAX_KUBECONFIG_BYTES = 256 * 1024
REFUSED_USER_KEYS = {
    "exec": "runs a command on the servers",
    "auth-provider": "runs an authentication plugin on the servers",
    "tokenFile": "reads a file on the servers: put the token inline (token)",
    "client-certificate": "reads a file on the servers: use client-certificate-data",
    "client-key": "reads a file on the servers: use client-key-data",
}
REFUSED_CLUSTER_KEYS = {
    "certificate-authority": "reads a file on the servers: use certificate-authority-data",
}


def parse(text: str, context: str | None = None) -> dict[str, Any]:
    """``{"context", "server", "config"}`` of a kubeconfig; ``context`` defaults to its
    ``current-context``. A 400 naming ``kubeconfig`` or ``context`` when it does not fit."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationError("the kubeconfig is empty", field="kubeconfig")
    if len(text.encode()) > MAX_KUBECONFIG_BYTES:
        raise ValidationError(f"the kubeconfig is over {MAX_KUBECONFIG_BYTES} bytes",
                              field="kubeconfig")
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValidationError(f"the kubeconfig is not YAML: {str(exc)[:200]}",
                              field="kubeconfig") from None
    if not isinstance(config, dict) or config.get("kind", "Config") != "Config" \
            or not isinstance(config.get("contexts"), list) \
            or not isinstance(config.get("clusters"), list):
        raise ValidationError("not a kubeconfig (kind Config with clusters and contexts)",
                              field="kubeconfig")
    name = context or config.get("current-context")
    if not isinstance(name, str) or not name:
        raise ValidationError("the kubeconfig has no current-context: name one",
                              field="context")
    contexts: dict[Any, dict[str, Any]] = {
        c.get("name"): c["context"] for c in config["contexts"]
        if isinstance(c, dict) and isinstance(c.get("context"), dict)}
    if name not in contexts:
        known = ", ".join(sorted(str(n) for n in contexts)) or "none"
        raise ValidationError(f"no context {name!r} in the kubeconfig (contexts: {known})",
                              field="context")
    clusters: dict[Any, dict[str, Any]] = {
        c.get("name"): c["cluster"] for c in config["clusters"]
        if isinstance(c, dict) and isinstance(c.get("cluster"), dict)}
    chosen: dict[str, Any] = contexts[name]
    cluster = clusters.get(str(chosen.get("cluster")))
    if not isinstance(cluster, dict) or not isinstance(cluster.get("server"), str):
        raise ValidationError(f"context {name!r} names no cluster with a server",
                              field="kubeconfig")
    if not cluster["server"].startswith(("https://", "http://")):
        raise ValidationError("the cluster's server must be an http(s) URL",
                              field="kubeconfig")
    for key, why in REFUSED_CLUSTER_KEYS.items():
        if cluster.get(key):
            raise ValidationError(f"cluster field {key!r} {why}", field="kubeconfig")
    if not isinstance(config.get("users", []), list | None):
        raise ValidationError("users must be a list", field="kubeconfig")
    users = {u.get("name"): u.get("user") or {} for u in config.get("users") or []
             if isinstance(u, dict)}
    user = users.get(str(chosen.get("user")), {})
    if not isinstance(user, dict):
        raise ValidationError("the context's user is not a mapping", field="kubeconfig")
    for key, why in REFUSED_USER_KEYS.items():
        if user.get(key):
            raise ValidationError(f"user field {key!r} {why}", field="kubeconfig")
    return {"context": name, "server": cluster["server"], "config": config}
