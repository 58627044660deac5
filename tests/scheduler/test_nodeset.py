"""A node set behaves as the sequence it holds and answers its lookups from the snapshot."""

from __future__ import annotations

from federation.scheduler.nodeset import NodeSet
from tests.scheduler.helpers import node


def test_a_node_set_is_the_sequence_it_was_built_from():
    nodes = [node("a"), node("b"), node("c")]
    s = NodeSet(nodes)
    assert len(s) == 3 and list(s) == nodes and s[1] is nodes[1]
    assert list(s[1:]) == nodes[1:]
    assert NodeSet.of(s) is s and NodeSet.of(nodes) is not s


def test_position_finds_a_node_by_id_and_none_for_a_stranger():
    s = NodeSet([node("a"), node("b")])
    assert s.position("b") == 1 and s.position("zz") is None


def test_ready_values_are_the_sorted_values_of_ready_nodes_only():
    s = NodeSet(
        [
            node("a", zone="z2"),
            node("b", zone="z1"),
            node("c", zone="z3", status="down"),
            node("d"),  # no zone
            node("e", zone="z1"),
        ]
    )
    assert s.ready_values("zone") == ["z1", "z2"]
    assert s.ready_values("rack") == []
