"""Reading a member cluster's kubeconfig (pure): the context to use and its API server.

The whole file is kept (sealed); this module only checks that it is a kubeconfig holding the
context asked for, and names the server it points at, so a bad file is refused when the
cluster is added rather than when the connector first dials it.
"""

from __future__ import annotations

from typing import Any

import yaml

from federation.errors import ValidationError

MAX_KUBECONFIG_BYTES = 256 * 1024


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
    if not name:
        raise ValidationError("the kubeconfig has no current-context: name one",
                              field="context")
    contexts = {c.get("name"): c.get("context") or {} for c in config["contexts"]
                if isinstance(c, dict)}
    if name not in contexts:
        known = ", ".join(sorted(str(n) for n in contexts)) or "none"
        raise ValidationError(f"no context {name!r} in the kubeconfig (contexts: {known})",
                              field="context")
    clusters = {c.get("name"): c.get("cluster") or {} for c in config["clusters"]
                if isinstance(c, dict)}
    cluster = clusters.get(contexts[name].get("cluster"))
    if not isinstance(cluster, dict) or not isinstance(cluster.get("server"), str):
        raise ValidationError(f"context {name!r} names no cluster with a server",
                              field="kubeconfig")
    return {"context": name, "server": cluster["server"], "config": config}
