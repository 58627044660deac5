"""Liveness decisions and the heartbeat relay, without servers."""

from __future__ import annotations

import json

import pytest

from federation.server.liveness import Liveness, Rhythm, rate_scaled_ttl, silent_nodes
from federation.server.relay import BatchRefused, decode_batch, encode_batch, relay_key, sign

TTL = 10.0


def ready(node_id: str, committed: float = 0.0, status: str = "ready") -> dict:
    return {"id": node_id, "name": node_id, "status": status, "last_heartbeat": committed}


@pytest.mark.parametrize(("seen", "committed", "armed_at", "now", "silent"), [
    ({"n": 100.0}, 0.0, 0.0, 105.0, False),     # beat 5 s ago
    ({"n": 100.0}, 0.0, 0.0, 111.0, True),      # beat 11 s ago: silent
    ({}, 100.0, 0.0, 105.0, False),             # registered 5 s ago, no beat yet
    ({}, 100.0, 0.0, 111.0, True),              # registered 11 s ago, never beat
    ({"n": 100.0}, 0.0, 108.0, 111.0, False),   # a new leader armed at 108: grace
    ({"n": 100.0}, 0.0, 108.0, 119.0, True),    # grace over, still silent
    ({"n": 50.0}, 100.0, 0.0, 105.0, False),    # came back (committed) after its last beat
])
def test_a_node_is_silent_when_its_latest_sign_of_life_is_older_than_the_ttl(
        seen, committed, armed_at, now, silent) -> None:
    found = silent_nodes([ready("n", committed)], seen, armed_at, now, TTL)
    assert bool(found) is silent
    if found:
        assert found[0].last_seen == max([*seen.values(), committed, armed_at])


def test_only_ready_nodes_are_judged() -> None:
    assert silent_nodes([ready("n", status="down")], {}, 0.0, 1000.0, TTL) == []


def test_a_new_leader_arms_every_timer_at_now_plus_grace() -> None:
    liveness = Liveness(clock=lambda: 500.0)
    liveness.arm(TTL, grace=15.0)
    # Nobody is silent before 500 + 15, whatever was seen before.
    assert silent_nodes([ready("n")], {}, liveness.armed_at, 514.9, TTL) == []
    assert silent_nodes([ready("n")], {}, liveness.armed_at, 515.1, TTL) != []


def test_relayed_beats_never_move_a_node_s_last_beat_back() -> None:
    liveness = Liveness(clock=lambda: 200.0)
    liveness.beat("n")
    liveness.record({"n": 150.0, "m": 190.0})
    assert liveness.seen() == {"n": 200.0, "m": 190.0}


KEY = relay_key("a-cluster-secret-of-some-length")


def test_a_signed_batch_gives_each_beat_on_the_receiver_s_clock() -> None:
    body = encode_batch("s2", {"a": 98.0, "b": 99.5}, now=100.0)
    # The receiver's clock is 3 s ahead: ages are applied to it, not the sender's times.
    beats = decode_batch(KEY, body, sign(KEY, body), now=103.0)
    assert beats == {"a": 101.0, "b": 102.5}


@pytest.mark.parametrize("tamper", ["unsigned", "other-key", "edited", "stale", "bad-age",
                                    "not-json"])
def test_a_batch_not_from_a_server_of_this_cluster_or_stale_is_refused(tamper: str) -> None:
    body = encode_batch("s2", {"a": 99.0}, now=100.0)
    signature: str | None = sign(KEY, body)
    now = 100.0
    if tamper == "unsigned":
        signature = None
    elif tamper == "other-key":
        signature = sign(relay_key("another-cluster-secret-0000"), body)
    elif tamper == "edited":
        body = body.replace(b'"a"', b'"z"')
    elif tamper == "stale":
        now = 1000.0
    elif tamper == "bad-age":
        body = json.dumps({"from": "s2", "sent_at": 100.0, "beats": {"a": -5}}).encode()
        signature = sign(KEY, body)
    elif tamper == "not-json":
        body = b"{"
        signature = sign(KEY, body)
    with pytest.raises(BatchRefused):
        decode_batch(KEY, body, signature, now)


def relay_to(answer: int, received: list) -> tuple:
    import httpx

    from federation.server.relay import SIGNATURE_HEADER, Relay

    def handler(request: httpx.Request) -> httpx.Response:
        body = request.read()
        received.append(decode_batch(KEY, body, request.headers.get(SIGNATURE_HEADER),
                                     now=json.loads(body)["sent_at"]))
        return httpx.Response(answer, json={})

    relay = Relay("s2", KEY, lambda: "http://leader", interval=0.1)
    return relay, httpx.Client(transport=httpx.MockTransport(handler))


def test_a_follower_sends_the_leader_each_node_s_latest_beat_once() -> None:
    import time as clock

    received: list = []
    relay, http = relay_to(200, received)
    now = clock.time()
    relay.add("a", now - 2)
    relay.add("a", now - 1)
    relay.add("b", now)
    assert relay.flush(http) is True
    assert set(received[0]) == {"a", "b"}
    assert relay.flush(http) is True and len(received) == 1  # nothing new: nothing sent
    assert relay.healthy()


def test_beats_the_leader_refused_wait_for_the_next_batch_and_health_fades() -> None:
    import time as clock

    received: list = []
    relay, http = relay_to(503, received)
    relay.add("a", clock.time())
    assert relay.flush(http) is False
    assert relay.healthy()  # an election is a moment: beats wait for the next leader
    relay.failing_since = clock.monotonic() - 5
    assert not relay.healthy()  # failing for long: agents are sent elsewhere
    # The refused beat was kept and goes out with the next batch that gets through.
    http.close()
    relay.flush(relay_to(200, received)[1])
    assert list(received[-1]) == ["a"]
    assert relay.healthy()


def test_a_change_of_role_restarts_the_relay_s_failure_clock() -> None:
    import time as clock

    received: list = []
    relay, http = relay_to(503, received)
    # Failing for long: as a leader (nobody to relay to), or towards a leader now gone.
    relay.add("a", clock.time())
    relay.failing_since = clock.monotonic() - 30
    assert not relay.healthy()
    relay.reset()  # gained or lost leadership
    assert relay.healthy()  # judged by its batches to the next leader, not by the past
    # What waited is already in this server's own memory: not relayed again.
    assert relay.flush(relay_to(200, received)[1]) is True
    assert received == []


@pytest.mark.parametrize(("nodes", "max_rate", "ttl"), [
    (100, 500.0, 10.0),       # 30 beats/s: the configured TTL
    (1_666, 500.0, 10.0),     # 499.8 beats/s: still 10 s
    (3_000, 500.0, 18.0),     # 3 beats per TTL x 3,000 nodes / 500 per s
    (10_000, 500.0, 60.0),
    (10_001, 500.0, 61.0),    # whole seconds, rounded up: never over the rate
    (10_000, 0.0, 10.0),      # 0: never scaled
])
def test_a_large_cluster_is_told_a_ttl_that_keeps_its_heartbeats_within_the_rate(
        nodes, max_rate, ttl) -> None:
    assert rate_scaled_ttl(10.0, nodes, max_rate) == ttl
    if max_rate:
        assert 3 * nodes / rate_scaled_ttl(10.0, nodes, max_rate) <= max_rate


def test_the_judge_keeps_a_longer_ttl_it_told_until_every_agent_can_have_heard_the_new_one(
        ) -> None:
    now = [1000.0]
    rhythm = Rhythm(10.0, 500.0, clock=lambda: now[0])
    assert rhythm.told(10_000) == 60.0
    assert rhythm.judging() == 60.0
    assert rhythm.told(1_000) == 10.0  # most nodes left: agents are told 10 s from now on
    now[0] += 59.0
    assert rhythm.judging() == 60.0  # an agent may still beat every 20 s
    now[0] += 2.0
    assert rhythm.judging() == 10.0
    assert rhythm.told(3_000) == 18.0  # a longer TTL applies at once
    assert rhythm.judging() == 18.0
