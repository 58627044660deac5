"""What keeps an agent's credentials away from its tasks.

* ``make_non_dumpable``: ``prctl(PR_SET_DUMPABLE, 0)``, so no process of the same user can
  read ``/proc/<agent>/environ`` or ``mem`` or attach a debugger (the kernel then treats the
  agent's /proc files as root's);
* ``scrub_environment``: credentials the agent read from its environment are removed from it,
  so processes it starts (executors, tasks) never inherit them;
* ``TaskUser``: the identity tasks run as. An agent running as root runs them as ``nobody``
  unless told otherwise (``--task-user``), so they cannot read the agent's 0700 data dir,
  its node credential or its log directories; an unprivileged agent runs them as itself
  (it cannot switch users), which docs/security.md states as a limit.
"""

from __future__ import annotations

import ctypes
import logging
import os
import pwd
from dataclasses import dataclass

log = logging.getLogger("federation.agent")
PR_SET_DUMPABLE = 4
CREDENTIAL_VARIABLES = ("FEDERATION_TOKEN", "FEDERATION_JOIN_TOKEN", "FEDERATION_RAFT_SECRET")


def make_non_dumpable() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        log.warning("could not make the agent non-dumpable: tasks of the agent's user may "
                    "read its memory and environment")
        return False


def is_dumpable() -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(3, 0, 0, 0, 0)) == 1  # PR_GET_DUMPABLE


def scrub_environment(names: tuple[str, ...] = CREDENTIAL_VARIABLES) -> None:
    """Remove credentials from this process's environment (children inherit it)."""
    for name in names:
        os.environ.pop(name, None)


@dataclass(frozen=True)
class TaskUser:
    uid: int
    gid: int
    name: str

    @property
    def switches(self) -> bool:
        """Whether tasks run as someone else than the agent."""
        return self.uid != os.geteuid()


def task_user(spec: str | None) -> TaskUser:
    """``spec``: a user name, ``uid`` or ``uid:gid``; None: ``nobody`` when root, else self."""
    if not spec:
        if os.geteuid() != 0:
            return TaskUser(os.geteuid(), os.getegid(), pwd.getpwuid(os.geteuid()).pw_name)
        spec = "nobody"
    name, _, group = spec.partition(":")
    if name.isdigit():
        uid = int(name)
        try:
            entry = pwd.getpwuid(uid)
            gid, label = entry.pw_gid, entry.pw_name
        except KeyError:
            gid, label = uid, name
    else:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise ValueError(f"no user {name!r}") from None
        uid, gid, label = entry.pw_uid, entry.pw_gid, name
    if group:
        if not group.isdigit():
            import grp

            try:
                gid = grp.getgrnam(group).gr_gid
            except KeyError:
                raise ValueError(f"no group {group!r}") from None
        else:
            gid = int(group)
    if uid != os.geteuid() and os.geteuid() != 0:
        raise ValueError("only an agent running as root can run tasks as another user")
    return TaskUser(uid, gid, label)
