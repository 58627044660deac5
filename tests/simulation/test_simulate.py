"""The trace simulator: file formats, the paper's inflation, the production planner driven
over a trace, and its figures."""

from __future__ import annotations

import csv
import io

import pytest

from federation import simulation as sim
from federation.errors import ValidationError

MACHINES = """machine_id,cpu_milli,memory_mib,num_gpu,gpu_model
m0,32000,65536,4,T4
m1,8000,32768,1,V100
m2,32000,131072,0,
"""
RAW_NODES = """sn,cpu_milli,memory_mib,gpu,model
m0,32000,65536,4,T4
"""
TASKS = (
    "task_id,arrival_s,scheduled_s,end_s,queue_delay_s,duration_s,cpu_milli,memory_mib,"
    "num_gpu,gpu_milli_per_gpu,gpu_spec,qos,final_phase\n"
    """t0,0,0,10,0,10,4000,8192,1,1000,,LS,Running
t1,1,1,10,0,9,2000,4096,1,500,,LS,Running
t2,2,2,10,0,8,2000,4096,1,500,,LS,Running
t3,3,3,10,0,7,8000,8192,2,1000,,LS,Running
t4,4,4,10,0,6,30000,8192,0,0,,BE,Running
t5,5,5,10,0,5,64000,8192,0,0,,BE,Running
"""
)


def test_machines_accept_the_derived_and_the_raw_node_list():
    derived = sim.parse_machines(MACHINES)
    raw = sim.parse_machines(RAW_NODES)
    assert derived[0] == raw[0] == sim.Machine("m0", 32000, 65536, 4, "T4")


def test_tasks_accept_the_raw_pod_list_columns():
    raw = "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np,1000,2048,1,460\n"
    assert sim.parse_tasks(raw)[0].shape.gpu_milli_per_gpu == 460


def test_a_bad_number_is_a_validation_error_naming_the_column():
    with pytest.raises(ValidationError) as err:
        sim.parse_machines("machine_id,cpu_milli,memory_mib,num_gpu\nm,lots,1,0\n")
    assert err.value.field == "cpu_milli"


def test_tasks_are_offered_once_in_file_order_and_dropped_when_nothing_fits():
    result = sim.run(sim.parse_machines(MACHINES), sim.parse_tasks(TASKS), policy="bestfit")
    assert [p.task_id for p in result.placements] == ["t0", "t1", "t2", "t3", "t4", "t5"]
    dropped = [p.task_id for p in result.placements if p.node_id is None]
    assert dropped == ["t5"]  # 64 cores: bigger than any machine
    assert (result.placed, result.dropped) == (5, 1)


def test_shares_pack_onto_one_device_and_whole_gpus_need_free_devices():
    result = sim.run(sim.parse_machines(MACHINES), sim.parse_tasks(TASKS), policy="bestfit")
    by_task = {p.task_id: p for p in result.placements}
    assert by_task["t1"].node_id == by_task["t2"].node_id
    assert by_task["t1"].gpus == by_task["t2"].gpus
    assert len(by_task["t3"].gpus) == 2


@pytest.mark.parametrize("policy", sim.POLICIES)
def test_every_policy_respects_capacity(policy):
    machines = sim.parse_machines(MACHINES)
    tasks = sim.parse_tasks(TASKS) * 5
    result = sim.run(machines, tasks, policy=policy, seed=1, shuffle=True)
    replay = _replay(machines, tasks_by_id(tasks), result.placements)
    assert replay == pytest.approx(result.gpu_allocation)


def tasks_by_id(tasks):
    return {t.task_id: t for t in tasks}


def _replay(machines, tasks, placements):
    """Recompute GPU allocation from placements alone, checking no device or node overflows."""
    cpu = {m.machine_id: m.cpu_milli for m in machines}
    mem = {m.machine_id: m.memory_mib for m in machines}
    gpu = {m.machine_id: [1000] * m.num_gpu for m in machines}
    used = 0
    for p in placements:
        if p.node_id is None:
            continue
        t = tasks[p.task_id]
        cpu[p.node_id] -= t.cpu_milli
        mem[p.node_id] -= t.memory_mib
        per = t.gpu_milli_per_gpu if t.shape.is_sharing else 1000
        for d in p.gpus:
            gpu[p.node_id][d] -= per
        used += t.gpu_milli
        assert cpu[p.node_id] >= 0 and mem[p.node_id] >= 0 and min(gpu[p.node_id], default=0) >= 0
    return used / (1000 * sum(m.num_gpu for m in machines))


def test_max_per_node_limits_tasks_of_one_app_on_a_node():
    tasks = sim.parse_tasks(
        "task_id,cpu_milli,memory_mib,num_gpu,gpu_milli_per_gpu,app,max_per_node\n"
        + "".join(f"a{i},100,100,0,0,web,1\n" for i in range(4))
    )
    result = sim.run(sim.parse_machines(MACHINES), tasks)
    nodes = [p.node_id for p in result.placements]
    assert nodes.count(None) == 1 and len(set(nodes) - {None}) == 3


def test_inflation_grows_gpu_demand_to_the_factor_without_passing_it():
    tasks = sim.parse_tasks(TASKS)
    out = sim.inflate(tasks, capacity_gpu_milli=3000, factor=3.0, seed=7)
    total = sum(t.gpu_milli for t in out)
    assert total <= 9000 and total + max(t.gpu_milli for t in tasks) > 9000
    assert sorted(t.task_id for t in out[: len(tasks)]) == sorted(t.task_id for t in tasks)


def test_inflation_is_reproducible_from_the_seed():
    tasks = sim.parse_tasks(TASKS)
    a = [t.task_id for t in sim.inflate(tasks, 3000, 3.0, seed=7)]
    b = [t.task_id for t in sim.inflate(tasks, 3000, 3.0, seed=7)]
    c = [t.task_id for t in sim.inflate(tasks, 3000, 3.0, seed=8)]
    assert a == b and a != c


def test_unallocated_gpus_are_read_where_arrived_work_reaches_capacity():
    machines = sim.parse_machines("machine_id,cpu_milli,memory_mib,num_gpu\nm,1000,1000,2\n")
    tasks = sim.parse_tasks(
        "task_id,cpu_milli,memory_mib,num_gpu,gpu_milli_per_gpu\n"
        "a,100,10,1,1000\nb,2000,10,1,1000\nc,100,10,1,1000\n"
    )
    result = sim.run(machines, tasks)
    # b (too much CPU) is dropped; at 100% arrived (after b) one GPU of two is allocated.
    assert result.unallocated_gpu_pct_at_100 == pytest.approx(50.0)
    assert result.curve[-1] == (150.0, 100.0)


def test_placements_csv_has_one_row_per_offered_task():
    result = sim.run(sim.parse_machines(MACHINES), sim.parse_tasks(TASKS), policy="bestfit")
    rows = list(csv.DictReader(io.StringIO(sim.placements_csv(result.placements))))
    assert [r["seq"] for r in rows] == [str(i) for i in range(6)]
    assert rows[5]["node_id"] == "" and rows[4]["gpus"] == ""
    assert rows[3]["gpus"].count(";") == 1


def test_an_unknown_policy_is_a_validation_error():
    with pytest.raises(ValidationError):
        sim.run(sim.parse_machines(MACHINES), sim.parse_tasks(TASKS), policy="worstfit")
