"""A follower given entries it already holds keeps them: no truncation, no ``may have
diverged`` alarm; a real conflict still reaches pysyncobj's truncation unchanged."""

from __future__ import annotations

from federation.raft.transport import reconcile_append

LOG = [(b"noop", 1, 1), (b"a", 2, 1), (b"b", 3, 1), (b"c", 4, 2), (b"d", 5, 2)]


def append(prev: int, prev_term: int, entries: list, commit: int = 5) -> dict:
    return {"type": "append_entries", "term": 2, "commit_index": commit, "prevLogIdx": prev,
            "prevLogTerm": prev_term, "entries": entries}


def test_identical_entries_covering_the_log_end_become_a_plain_append_after_it() -> None:
    message = append(2, 1, [(b"b", 3, 1), (b"c", 4, 2), (b"d", 5, 2), (b"e", 6, 2)])
    plan = reconcile_append(message, LOG)
    assert plan.ack_next_index is None
    assert (plan.message["prevLogIdx"], plan.message["prevLogTerm"]) == (5, 2)
    assert plan.message["entries"] == [(b"e", 6, 2)]


def test_identical_entries_short_of_the_log_end_truncate_nothing_and_are_acknowledged() -> None:
    plan = reconcile_append(append(2, 1, [(b"b", 3, 1)], commit=5), LOG)
    assert plan.ack_next_index == 4
    assert "prevLogIdx" not in plan.message and "entries" not in plan.message
    assert plan.message["commit_index"] == 3  # only what the message vouched for


def test_a_heartbeat_from_below_the_log_end_truncates_nothing() -> None:
    plan = reconcile_append(append(3, 1, []), LOG)
    assert plan.ack_next_index == 4 and "prevLogIdx" not in plan.message


def test_same_index_and_term_but_other_content_is_a_conflict_left_to_pysyncobj() -> None:
    message = append(2, 1, [(b"B", 3, 1), (b"c", 4, 2)])
    assert reconcile_append(message, LOG).message is message


def test_a_newer_term_at_the_same_index_is_a_conflict_left_to_pysyncobj() -> None:
    message = append(3, 1, [(b"x", 4, 3)])
    assert reconcile_append(message, LOG).message is message


def test_messages_at_the_log_end_a_gap_or_a_wrong_previous_term_pass_unchanged() -> None:
    for message in (append(5, 2, [(b"e", 6, 2)]), append(9, 2, []), append(3, 2, [])):
        plan = reconcile_append(message, LOG)
        assert plan.message is message and plan.ack_next_index is None


def test_snapshot_chunks_and_large_entry_transmissions_pass_unchanged() -> None:
    chunk = {**append(2, 1, []), "transmission": "start", "data": b"..."}
    snapshot = {"type": "append_entries", "term": 2, "commit_index": 5, "serialized": None}
    for message in (chunk, snapshot):
        assert reconcile_append(message, LOG).message is message
