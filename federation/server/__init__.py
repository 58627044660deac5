"""A federation master: Raft node, HTTP API and the leader-only loops, wired together."""

from federation.server.config import ServerConfig
from federation.server.master import Master

__all__ = ["Master", "ServerConfig"]
