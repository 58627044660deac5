"""A snapshot's nodes with the lookups planning repeats for every group, computed once.

Planning a job asks the same questions of the node list for each of its groups (where is
node X in the list, which zones have ready nodes); over thousands of groups against one
snapshot, answering them once per snapshot instead of once per group is most of the cost.
The answers depend on the nodes, not on what is allocated on them: a snapshot whose nodes
differ from the previous one's only by their usage keeps the previous answers (``like``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import overload

from federation.model.resources import ResourceTotals
from federation.scheduler.types import NodeView


class NodeSet(Sequence[NodeView]):
    """An immutable sequence of node views with cached lookups."""

    __slots__ = ("_has_gpus", "_nodes", "_position", "_ready_capacity", "_ready_values")

    def __init__(self, nodes: Iterable[NodeView] = (), like: NodeSet | None = None) -> None:
        """``like``: a node set of the same nodes in the same order, differing only in what
        is allocated on them, whose answers hold for this one too."""
        self._nodes = tuple(nodes)
        self._position: dict[str, int] | None = None
        self._ready_values: dict[str, list[str]] = {}
        self._has_gpus: bool | None = None
        self._ready_capacity: ResourceTotals | None = None
        if like is not None and len(like) == len(self._nodes):
            self._position = like._position
            self._ready_values = like._ready_values
            self._has_gpus = like._has_gpus
            self._ready_capacity = like._ready_capacity

    def ready_capacity(self) -> ResourceTotals:
        """What the ready nodes hold in all (fair share divides it)."""
        if self._ready_capacity is None:
            cpu = memory = gpu_milli = 0
            for node in self._nodes:
                if node.status == "ready":
                    cpu += node.capacity.cpu_milli
                    memory += node.capacity.memory_mib
                    gpu_milli += node.capacity.gpu_milli
            self._ready_capacity = ResourceTotals(cpu, memory, gpu_milli)
        return self._ready_capacity

    def has_gpus(self) -> bool:
        """Whether any node has a GPU (then placing even CPU-only work can strand GPUs)."""
        if self._has_gpus is None:
            self._has_gpus = any(n.capacity.gpu for n in self._nodes)
        return self._has_gpus

    @classmethod
    def of(cls, nodes: Sequence[NodeView]) -> NodeSet:
        """``nodes`` itself when it is already a node set, else a new one."""
        return nodes if isinstance(nodes, NodeSet) else cls(nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    @overload
    def __getitem__(self, index: int) -> NodeView: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[NodeView]: ...

    def __getitem__(self, index: int | slice) -> NodeView | Sequence[NodeView]:
        return self._nodes[index]

    def __iter__(self) -> Iterator[NodeView]:
        return iter(self._nodes)

    def __repr__(self) -> str:
        return f"NodeSet({len(self._nodes)} nodes)"

    def position(self, node_id: str) -> int | None:
        """Where the node with this id is in the sequence, ``None`` when it is not."""
        if self._position is None:
            self._position = {n.id: i for i, n in enumerate(self._nodes)}
        return self._position.get(node_id)

    def ready_values(self, attribute: str) -> list[str]:
        """The distinct values of ``attribute`` among ready nodes, sorted (spread's domain)."""
        values = self._ready_values.get(attribute)
        if values is None:
            values = sorted(
                {
                    v
                    for n in self._nodes
                    if n.status == "ready" and (v := n.attribute(attribute)) is not None
                }
            )
            self._ready_values[attribute] = values
        return values
