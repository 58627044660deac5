"""Health checks of running tasks: http, tcp and command, each bounded by a timeout.

A check returns ``(ok, detail)``. The task runner decides what a run of failures means
(``failures`` consecutive ones after the ``grace`` period make the task unhealthy and it is
restarted), as Marathon's health checks did.
"""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass
from typing import Any

import httpx

from federation.specs.duration import parse_duration


@dataclass(frozen=True)
class HealthSpec:
    type: str
    port: str | None
    path: str
    command: list[str]
    interval_s: float
    timeout_s: float
    grace_s: float
    failures: int

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HealthSpec:
        return cls(
            type=str(data.get("type", "http")),
            port=data.get("port"),
            path=str(data.get("path") or "/"),
            command=[str(c) for c in data.get("command") or []],
            interval_s=max(0.1, parse_duration(data.get("interval", "10s"))),
            timeout_s=max(0.05, parse_duration(data.get("timeout", "2s"))),
            grace_s=parse_duration(data.get("grace", "10s")),
            failures=max(1, int(data.get("failures", 3))),
        )


def check(spec: HealthSpec, host: str, ports: dict[str, int], cwd: str,
          env: dict[str, str]) -> tuple[bool, str]:
    if spec.type in ("http", "tcp"):
        if spec.port is None or spec.port not in ports:
            return False, f"no port named {spec.port!r}"
        port = ports[spec.port]
        if spec.type == "tcp":
            try:
                with socket.create_connection((host, port), timeout=spec.timeout_s):
                    return True, f"tcp {host}:{port} accepts connections"
            except OSError as exc:
                return False, f"tcp {host}:{port}: {exc.strerror or exc}"
        url = f"http://{host}:{port}{spec.path}"
        try:
            answer = httpx.get(url, timeout=spec.timeout_s)
        except httpx.HTTPError as exc:
            return False, f"GET {url}: {type(exc).__name__}"
        if 200 <= answer.status_code < 400:
            return True, f"GET {url}: {answer.status_code}"
        return False, f"GET {url}: HTTP {answer.status_code}"
    if spec.type == "command":
        try:
            done = subprocess.run(spec.command, cwd=cwd, env=env, capture_output=True,
                                  timeout=spec.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            return False, f"command timed out after {spec.timeout_s:g}s"
        except OSError as exc:
            return False, f"command cannot start: {exc.strerror or exc}"
        if done.returncode == 0:
            return True, "command exited 0"
        return False, f"command exited {done.returncode}"
    return False, f"unknown check type {spec.type!r}"
