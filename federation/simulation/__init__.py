"""What-if simulation: replay a task trace through the production planner.

:mod:`~federation.simulation.trace` reads machines and tasks (the Alibaba ``openb`` layouts)
and builds the FGD paper's inflated workload; :mod:`~federation.simulation.replay` plans the
tasks with the scheduler's own ``plan_work`` over a snapshot of the machines.
"""

from federation.simulation.replay import (
    POLICIES,
    Placement,
    SimResult,
    node_views,
    placements_csv,
    run,
)
from federation.simulation.trace import Machine, SimTask, inflate, parse_machines, parse_tasks

__all__ = [
    "POLICIES", "Machine", "Placement", "SimResult", "SimTask", "inflate", "node_views",
    "parse_machines", "parse_tasks", "placements_csv", "run",
]
