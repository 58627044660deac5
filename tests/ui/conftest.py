"""A real single-server cluster (in-process Master: Raft, API and UI on loopback) and a
signed-in browser-like HTTP session for the UI tests."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from federation.ids import new_id
from federation.server.config import ServerConfig
from federation.server.master import Master
from tests.harness import SECRET, free_ports, wait_for

API_TOKEN = "ui-test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Master]:
    """One server per test module (starting Raft costs a second); tests use their own ids."""
    http, raft = free_ports(2)
    m = Master(ServerConfig(
        id="ui1", data_dir=str(tmp_path_factory.mktemp("server")), http=f"127.0.0.1:{http}",
        raft=f"127.0.0.1:{raft}", secret=SECRET, token=API_TOKEN, heartbeat_ttl=120))
    m.start()
    try:
        wait_for(lambda: m.raft is not None and m.raft.is_leader(), 15, "leadership")
        yield m
    finally:
        m.stop()


def base_url(master: Master) -> str:
    return f"http://{master.config.http}"


def commit(master: Master, command: dict[str, Any]) -> dict[str, Any]:
    result = master.commit_sync({"id": f"test:{new_id()}", "time": time.time(), **command})
    assert result["ok"], result
    return result["value"]


def sign_in(client: httpx.Client, token: str = API_TOKEN) -> httpx.Response:
    """Sign in as a browser would: fetch the form (and its nonce cookie), post it."""
    form = client.get("/ui/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text).group(1)
    return client.post("/ui/login", data={"nonce": nonce, "token": token, "next": "/ui/"})


def csrf_of(page: str) -> str:
    return re.search(r'"X-CSRF-Token": "([^"]+)"', page).group(1)


@pytest.fixture
def anonymous(master: Master) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url(master), timeout=10) as client:
        yield client


@pytest.fixture
def browser(master: Master) -> Iterator[httpx.Client]:
    """An HTTP client holding a signed-in session cookie."""
    with httpx.Client(base_url=base_url(master), timeout=10) as client:
        answer = sign_in(client)
        assert answer.status_code == 303, answer.text
        yield client
