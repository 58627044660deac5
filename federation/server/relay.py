"""Heartbeats a follower received, handed to the leader in batches.

A follower answers a node's heartbeat itself (after checking the node's credential) and
relays the beat: every ``interval`` seconds one signed ``POST /v1/internal/heartbeats`` carries
every node that beat here since the last batch, with how long ago it beat, to the leader,
which records them in its memory. The leader then parses one request per follower per
interval instead of one per heartbeat, and nothing is committed.

A follower that could not reach the leader recently answers heartbeats with 503 (and the
leader it knows), so an agent moves on to another server rather than believe a beat that
never arrived counted.

The failure clock restarts whenever this server's role changes: a server that leads relays
nothing (beats it received as a follower are already in its own memory), and one that
steps down is judged by its batches to the next leader, not by its time leading.

The batch is signed with a key derived from the cluster secret (only servers hold it) and
carries the time it was sent: the leader refuses a batch older than ``MAX_AGE`` seconds, so
a replayed batch cannot keep a dead node alive.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

log = logging.getLogger("federation.relay")

PATH = "/v1/internal/heartbeats"
SIGNATURE_HEADER = "X-Federation-Relay-Signature"
MAX_AGE = 30.0
MAX_BATCH = 50_000


def relay_key(secret: str) -> bytes:
    return hashlib.sha256(b"federation-heartbeat-relay:" + secret.encode()).digest()


def sign(key: bytes, body: bytes) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def encode_batch(sender: str, beats: dict[str, float], now: float) -> bytes:
    """The batch body: who sends it, when, and each node's beat as seconds before then."""
    ages = {node_id: round(max(0.0, now - at), 3) for node_id, at in beats.items()}
    return json.dumps({"from": sender, "sent_at": now, "beats": ages},
                      separators=(",", ":")).encode()


class BatchRefused(ValueError):
    """A relayed batch that is not signed by a server of this cluster, or is malformed."""


def decode_batch(key: bytes, body: bytes, signature: str | None, now: float,
                 max_age: float = MAX_AGE) -> dict[str, float]:
    """The beats of a signed batch as ``node id -> time of the beat`` (this server's clock:
    the ages are applied to the time of receipt, so the servers' clocks need not agree)."""
    if not signature or not hmac.compare_digest(sign(key, body), signature):
        raise BatchRefused("the batch is not signed by a server of this cluster")
    try:
        data = json.loads(body)
    except ValueError:
        raise BatchRefused("the batch is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("beats"), dict):
        raise BatchRefused("the batch has no beats")
    sent_at = data.get("sent_at")
    if isinstance(sent_at, bool) or not isinstance(sent_at, int | float) \
            or abs(now - sent_at) > max_age:
        raise BatchRefused("the batch is too old (or from a clock far off)")
    beats = data["beats"]
    if len(beats) > MAX_BATCH:
        raise BatchRefused("the batch is too large")
    out = {}
    for node_id, age in beats.items():
        if isinstance(age, bool) or not isinstance(age, int | float) or not 0 <= age <= max_age:
            raise BatchRefused(f"bad age for node {str(node_id)[:64]!r}")
        out[str(node_id)] = now - float(age)
    return out


class Relay:
    """The follower side: beats waiting to be sent, and a thread that sends them."""

    def __init__(self, sender: str, key: bytes, leader_url: Callable[[], str | None],
                 interval: float, verify: Any = True) -> None:
        self.sender, self.key, self.leader_url = sender, key, leader_url
        self.interval = interval
        self._pending: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._verify = verify
        self.failing_since: float | None = None  # first failure since the last success
        self.sent_batches = 0

    def add(self, node_id: str, at: float) -> None:
        with self._lock:
            self._pending[node_id] = at

    def reset(self) -> None:
        """This server's role changed (it leads now, or stopped leading): beats waiting are
        dropped and the failure clock restarts. Every beat it received is already in its own
        memory; as a leader it judges by them, and as a follower it relays from now on."""
        with self._lock:
            self._pending = {}
        self._healthy_again()

    def healthy(self) -> bool:
        """Whether beats relayed now are likely to reach the leader: batches go through, or
        have failed only for a moment (an election: the beats wait and go to the new
        leader, which gives every node a grace TTL anyway). Answering 503 at once would
        send every agent of this server to the others during each election."""
        since = self.failing_since
        return since is None or time.monotonic() - since < max(3 * self.interval, 1.0)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="heartbeat-relay", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _take(self) -> dict[str, float]:
        with self._lock:
            taken, self._pending = self._pending, {}
        return taken

    def _put_back(self, beats: dict[str, float]) -> None:
        with self._lock:
            for node_id, at in beats.items():
                if self._pending.get(node_id, 0.0) < at:
                    self._pending[node_id] = at

    def _run(self) -> None:
        with httpx.Client(timeout=max(2.0, self.interval * 4), verify=self._verify) as http:
            while not self._stop.wait(self.interval):
                self.flush(http)

    def flush(self, http: httpx.Client) -> bool:
        beats = self._take()
        if not beats:
            return True
        url = self.leader_url()
        if url is None:
            self._put_back(beats)
            self._failed()
            return False
        now = time.time()
        # Beats that could not be sent for long are stale anyway: the leader would refuse them.
        beats = {n: at for n, at in beats.items() if now - at < MAX_AGE / 2}
        if not beats:
            return False
        body = encode_batch(self.sender, beats, now)
        try:
            answer = http.post(url.rstrip("/") + PATH, content=body, headers={
                "Content-Type": "application/json", SIGNATURE_HEADER: sign(self.key, body)})
            ok = answer.status_code == 200
        except httpx.HTTPError as exc:
            log.debug("relaying %d heartbeats to %s failed: %r", len(beats), url, exc)
            ok = False
        if ok:
            self._healthy_again()
            self.sent_batches += 1
        else:
            self._put_back(beats)
            self._failed(url)
        return ok

    def _failed(self, url: str | None = None) -> None:
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            log.info("cannot relay heartbeats to the leader (%s): they wait for the next "
                     "batch", url or "none known")

    def _healthy_again(self) -> None:
        since, self.failing_since = self.failing_since, None
        if since is not None:
            log.info("relaying heartbeats to the leader again after %.1fs",
                     time.monotonic() - since)
