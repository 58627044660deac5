"""A federation master: Raft node, HTTP API and the leader-only loops, wired together.

``federation.server.master.Master`` is the composition root; the API imports the small
server-side modules it needs (``relay``, ``liveness``) without importing the master.
"""
