"""`federation server` whose AWS provider pauses at one point of a launch, so a test can kill
the leader exactly there.

    python tests/autoscaler/pausing_server.py PAUSE CLAIM_FILE server --id ...

``PAUSE`` is ``after-begin:SECONDS`` (the launch is committed, the provider not called yet)
or ``after-call:SECONDS`` (the provider called, the outcome not committed). The real AWS
provider is wrapped and handed to the server's composition root (``Master(providers=...)``);
nothing in the server knows about the pause. Only the first server of a cluster to reach the
point pauses (it creates ``CLAIM_FILE``): the leader that takes over resumes the launch
without pausing.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Sequence

import typer

from federation.cli import server as server_cmds
from federation.providers.base import (
    Bootstrap,
    Instance,
    InstanceType,
    LaunchResult,
    Provider,
    load_provider,
)
from federation.specs.pool import PoolSpec

log = logging.getLogger("federation.tests.pause")


class PausingProvider(Provider):
    """Delegates to ``inner``; the first launch in the cluster pauses before or after the
    call to it."""

    def __init__(self, inner: Provider, where: str, seconds: float, claim: str) -> None:
        super().__init__()
        if where not in ("after-begin", "after-call"):
            raise ValueError(f"unknown pause point {where!r}")
        self.inner, self.where, self.seconds, self.claim = inner, where, seconds, claim

    def _pause(self, token: str) -> None:
        try:
            os.close(os.open(self.claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return  # another server paused already: this one resumes
        log.warning("pausing launch %s %s for %.0fs", token, self.where, self.seconds)
        time.sleep(self.seconds)

    def catalog(self, pool: PoolSpec) -> list[InstanceType]:
        return self.inner.catalog(pool)

    def launch(self, pool: PoolSpec, instance_type: str, count: int, token: str,
               bootstrap: Bootstrap) -> LaunchResult:
        if self.where == "after-begin":
            self._pause(token)
        result = self.inner.launch(pool, instance_type, count, token, bootstrap)
        if self.where == "after-call":
            self._pause(token)
        return result

    def terminate(self, pool: PoolSpec, instance_ids: Sequence[str], token: str) -> None:
        self.inner.terminate(pool, instance_ids, token)

    def list_instances(self, pool: PoolSpec) -> list[Instance]:
        return self.inner.list_instances(pool)


def main(argv: list[str]) -> None:
    pause, claim, *server_args = argv
    where, _, seconds = pause.partition(":")
    app = typer.Typer()
    server_cmds.register(app, providers={
        "aws": PausingProvider(load_provider("aws"), where, float(seconds), claim)})
    app(server_args)


if __name__ == "__main__":
    main(sys.argv[1:])
