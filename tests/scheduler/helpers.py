"""Builders for scheduler tests: nodes and groups with readable defaults."""

from __future__ import annotations

from federation.scheduler.types import NodeView, Resources, TaskGroupDemand


def node(node_id: str = "n1", cpu: int = 4000, mem: int = 8192, gpu: int = 0, **kw) -> NodeView:
    allocated = kw.pop("allocated", Resources())
    return NodeView(id=node_id, capacity=Resources(cpu, mem, gpu), allocated=allocated, **kw)


def group(count: int = 1, cpu: int = 500, mem: int = 256, gpu: int = 0, share: int = 0, **kw):
    return TaskGroupDemand(
        job_id=kw.pop("job_id", "job"),
        name=kw.pop("name", "web"),
        count=count,
        resources=Resources(cpu, mem, gpu, share),
        **kw,
    )
