"""What an agent keeps on disk: its node identity and one directory per allocation.

Layout under ``--data-dir``::

    node.json                       node id and token of the last registration
    allocs/<alloc_id>/alloc.json    the allocation as last received from the servers
    allocs/<alloc_id>/state.json    what the agent did: phase, restarts, ports, last outcome
    allocs/<alloc_id>/run/          the current run: task.json, executor.json, exit.json
    allocs/<alloc_id>/logs/         stdout/stderr segments
    allocs/<alloc_id>/local/        the task's working directory

Every file is replaced atomically (write, fsync, rename), so a crash leaves the old or the
new version, never half of one. That is what lets a restarted agent adopt its tasks.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from federation.agent.executor import write_json

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,200}$")


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class Store:
    def __init__(self, data_dir: str | Path) -> None:
        from federation.tls import private_dir

        # 0700: the node credential lives here, and tasks (another user) must not even look.
        self.root = private_dir(Path(data_dir).resolve())
        self.allocs = self.root / "allocs"
        self.allocs.mkdir(parents=True, exist_ok=True)

    # -- node identity --
    def node(self) -> dict[str, Any] | None:
        return read_json(self.root / "node.json")

    def save_node(self, data: dict[str, Any]) -> None:
        from federation.tls import write_private

        write_private(self.root / "node.json", json.dumps(data).encode())

    # -- allocations --
    def alloc_dir(self, alloc_id: str) -> Path:
        if not _SAFE_ID.match(alloc_id) or alloc_id in (".", ".."):
            raise ValueError(f"unsafe allocation id {alloc_id!r}")
        return self.allocs / alloc_id

    def known_allocs(self) -> list[str]:
        return sorted(p.name for p in self.allocs.iterdir() if (p / "state.json").exists())

    def load(self, alloc_id: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        base = self.alloc_dir(alloc_id)
        return read_json(base / "alloc.json"), read_json(base / "state.json")

    def save_alloc(self, alloc: dict[str, Any]) -> None:
        base = self.alloc_dir(alloc["id"])
        for sub in ("run", "logs", "local"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        write_json(str(base / "alloc.json"), alloc)

    def save_state(self, alloc_id: str, state: dict[str, Any]) -> None:
        write_json(str(self.alloc_dir(alloc_id) / "state.json"), state)

    def remove(self, alloc_id: str) -> None:
        shutil.rmtree(self.alloc_dir(alloc_id), ignore_errors=True)


def pid_alive(pid: int | None, start_ticks: int | None) -> bool:
    """True when ``pid`` runs and is the process that started at ``start_ticks``."""
    from federation.agent.executor import process_start_ticks

    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return False
    state = stat[stat.rfind(")") + 2:].split()[0]
    if state in ("Z", "X"):
        return False
    return start_ticks is None or process_start_ticks(pid) == start_ticks


def clear_run(run_dir: Path) -> None:
    for name in ("executor.json", "exit.json", "task.json"):
        try:
            os.unlink(run_dir / name)
        except FileNotFoundError:
            pass
