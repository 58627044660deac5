"""The boot script a cloud instance runs to install the agent and join the cluster."""

from __future__ import annotations

import re
import shlex
from importlib.resources import files
from typing import TYPE_CHECKING

from federation.errors import ProviderError
from federation.providers.base import Bootstrap

if TYPE_CHECKING:
    from federation.specs.pool import PoolSpec

DEFAULT_INSTALL = "python3 -m pip install --quiet 'federation'"
_TOKEN = re.compile(r"^[A-Za-z0-9._~+/=:-]{1,512}$")


def agent_script(
    pool: PoolSpec,
    bootstrap: Bootstrap,
    install: str | None = None,
    instance_metadata: str | None = None,
) -> str:
    """A POSIX shell script (cloud-init user data / GCE startup-script) that starts the agent.

    The join token goes to a root-only environment file, not to the command line. One script
    serves every instance of a launch, so with ``instance_metadata`` (``aws`` or ``gcp``) the
    agent reads its own instance id, zone, region and instance type from that cloud's
    metadata service and registers under the id the provider lists the instance by.
    """
    if not _TOKEN.match(bootstrap.join_token):
        raise ProviderError("the join token has characters that cannot go into a boot script")
    if not bootstrap.servers:
        raise ProviderError("a boot script needs at least one server address")
    labels = {**pool.labels, **bootstrap.labels}
    argv = [
        "/usr/bin/env", "federation", "agent",
        "--server", ",".join(bootstrap.servers),
        "--data-dir", "/var/lib/federation",
        "--pool", pool.name,
        "--provider", pool.provider,
    ]  # fmt: skip
    if instance_metadata:
        argv += ["--instance-metadata", instance_metadata]
    if labels:
        argv += ["--labels", ",".join(f"{k}={v}" for k, v in sorted(labels.items()))]
    template = files("federation.providers").joinpath("agent-bootstrap.sh.tpl").read_text()
    return template.format(
        install=install or DEFAULT_INSTALL,
        token=bootstrap.join_token,
        pool=pool.name,
        command=" ".join(shlex.quote(a) for a in argv),
    )
