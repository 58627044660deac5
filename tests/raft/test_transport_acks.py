"""A late acknowledgement never moves a follower's next index back (so nothing is re-sent);
a follower's reset still does."""

from __future__ import annotations

from types import SimpleNamespace

from federation.raft.transport import AuditedTransport


def transport_with(next_index: dict) -> AuditedTransport:
    transport = object.__new__(AuditedTransport)
    leader = SimpleNamespace(_SyncObj__raftNextIndex=next_index)

    def handle(node, message):  # what pysyncobj's leader does with next_node_idx
        if message["reset"] or message["success"]:
            next_index[node] = message["next_node_idx"]

    transport._syncObj = leader
    transport._onMessageReceivedCallback = handle
    return transport


def ack(next_node_idx: int, *, success: bool = True, reset: bool = False) -> dict:
    return {"type": "next_node_idx", "next_node_idx": next_node_idx, "success": success,
            "reset": reset}


def test_a_late_acknowledgement_keeps_the_next_index_where_sending_left_it() -> None:
    next_index = {"f1": 21}  # entries up to 20 already sent
    transport_with(next_index)._onMessageReceived("f1", ack(11))
    assert next_index["f1"] == 21


def test_an_acknowledgement_beyond_the_index_moves_it_forward() -> None:
    next_index = {"f1": 21}
    transport_with(next_index)._onMessageReceived("f1", ack(30))
    assert next_index["f1"] == 30


def test_a_reset_from_a_follower_that_lacks_entries_moves_it_back() -> None:
    next_index = {"f1": 21}
    transport_with(next_index)._onMessageReceived("f1", ack(5, success=False, reset=True))
    assert next_index["f1"] == 5


def test_other_messages_pass_through_untouched() -> None:
    seen = []
    transport = transport_with({})
    transport._onMessageReceivedCallback = lambda node, message: seen.append((node, message))
    transport._onMessageReceived("f1", {"type": "append_entries"})
    assert seen == [("f1", {"type": "append_entries"})]
