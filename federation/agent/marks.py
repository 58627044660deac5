"""How an agent marks what it starts, so it can find it again without its data directory.

An agent is identified by its node name and the absolute path of its data directory: the
same pair after a restart (the directory emptied or replaced at the same path) is the same
agent; two agents on one host (another name or another directory) never touch each other's
tasks. The marks are carried in each executor's and task's environment
(``FEDERATION_AGENT_NODE``, ``FEDERATION_AGENT_DIR``), in each container's labels
(``federation.node``, ``federation.agent-dir``) and in the name of the cgroup directory that
holds the agent's per-allocation groups.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

NODE_MARKER = "FEDERATION_AGENT_NODE"
DIR_MARKER = "FEDERATION_AGENT_DIR"
ALLOC_MARKER = "FEDERATION_ALLOC_ID"
NODE_LABEL = "federation.node"
DIR_LABEL = "federation.agent-dir"
ALLOC_LABEL = "federation.alloc"


@dataclass(frozen=True)
class Marks:
    node: str
    data_dir: str  # absolute, resolved

    def env(self) -> dict[str, str]:
        return {NODE_MARKER: self.node, DIR_MARKER: self.data_dir}

    def labels(self) -> dict[str, str]:
        return {NODE_LABEL: self.node, DIR_LABEL: self.data_dir}

    def group(self) -> str:
        """A cgroup directory name of this agent's own (readable, and unique per data dir)."""
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", self.node)[:80] or "node"
        return f"{safe}-{hashlib.sha256(self.data_dir.encode()).hexdigest()[:12]}"

    def matches(self, environ: dict[bytes, bytes]) -> bool:
        """True when a process environment carries this agent's marks."""
        return all(environ.get(k.encode()) == v.encode() for k, v in self.env().items())
