"""Whatever plans arrive, in whatever order, applying them never over-commits a node (hypothesis).

Plans here are arbitrary: made against stale views, overlapping, asking for GPU devices that
are taken. The state machine's re-check is the last line: every node's live allocations must
fit its capacity, device by device, after every entry.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from federation.model import gpu_per_device_milli, is_live
from federation.state.machine import StateMachine

NODES = {f"n{i}": {"cpu_milli": cpu, "memory_mib": mem, "gpu": gpus}
         for i, (cpu, mem, gpus) in enumerate([(2000, 2048, 0), (4000, 4096, 2),
                                                (1000, 8192, 1)])}

placement = st.fixed_dictionaries({
    "node_id": st.sampled_from(sorted(NODES)),
    "cpu": st.sampled_from([100, 500, 1000, 1500]),
    "memory": st.sampled_from([64, 512, 2048]),
    "gpu": st.sampled_from([0, 0, 0.5, 1]),
    "device": st.integers(0, 1),
    "group": st.sampled_from(["web", "gang"]),
})
entry = st.fixed_dictionaries({
    "placements": st.lists(placement, max_size=6),
    "stop_some": st.booleans(),
})


def assert_nothing_over_committed(sm: StateMachine) -> None:
    cpu: dict[str, int] = {}
    memory: dict[str, int] = {}
    devices: dict[tuple[str, int], int] = {}
    for alloc in sm.allocations.values():
        if not is_live(alloc):
            continue
        res = alloc["resources"]
        node = alloc["node_id"]
        cpu[node] = cpu.get(node, 0) + res["cpu_milli"]
        memory[node] = memory.get(node, 0) + res["memory_mib"]
        for d in res.get("gpu_devices") or ():
            devices[(node, d)] = devices.get((node, d), 0) + gpu_per_device_milli(res)
    for node, capacity in NODES.items():
        assert cpu.get(node, 0) <= capacity["cpu_milli"]
        assert memory.get(node, 0) <= capacity["memory_mib"]
        for d in range(capacity["gpu"]):
            assert devices.get((node, d), 0) <= 1000
    assert all(d < NODES[n]["gpu"] for n, d in devices)


@settings(max_examples=150, deadline=None)
@given(st.lists(entry, min_size=1, max_size=8))
def test_applied_plans_never_over_commit_a_node(entries) -> None:
    sm = StateMachine()
    n = 0

    def apply(command: dict) -> dict:
        nonlocal n
        n += 1
        return sm.apply({"id": f"c{n}", "time": 1.0, **command})

    spec = {"id": "j", "type": "service", "depends_on": [],
            "groups": [{"name": "web", "count": 50}, {"name": "gang", "count": 50, "gang": True}]}
    apply({"type": "job.register", "spec": spec})
    for node_id, capacity in NODES.items():
        apply({"type": "node.register", "node": {"id": node_id, "name": node_id,
                                                  "token_hash": "h", "capacity": capacity}})
    for e in entries:
        live = sorted(a["id"] for a in sm.allocations.values() if is_live(a))
        allocations = []
        for p in e["placements"]:
            n += 1
            gpu = p["gpu"] if NODES[p["node_id"]]["gpu"] else 0
            device = min(p["device"], max(NODES[p["node_id"]]["gpu"] - 1, 0))
            allocations.append({
                "id": f"a{n}", "job_id": "j", "group": p["group"], "index": 0,
                "node_id": p["node_id"],
                "resources": {"cpu_milli": p["cpu"], "memory_mib": p["memory"], "gpu": gpu,
                              "gpu_devices": [device] if gpu else []}})
        result = apply({"type": "plan.apply", "job_id": "j", "job_version": 1,
                        "allocations": allocations,
                        "stops": live[:1] if e["stop_some"] else []})
        assert result["ok"], result
        gangs = [a for a in allocations if a["group"] == "gang"]
        landed = [a for a in gangs if a["id"] in sm.allocations]
        assert landed == [] or len(landed) == len(gangs)  # a gang lands whole or not at all
        assert_nothing_over_committed(sm)
