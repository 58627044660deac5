"""Size guard: a state of 5,000 jobs and 20,000 allocations must not make the jobs page big
or slow (it pages on the server), nor a job's page (it reads only that job's allocations)."""

from __future__ import annotations

import time

import pytest

from tests.ui.conftest import commit

JOBS, ALLOCS_PER_JOB = 5_000, 4
BUDGET_BYTES = 200_000
BUDGET_SECONDS = 2.0  # generous for a shared 2-core machine; measured ~0.05 s alone


def _big_state() -> dict:
    node = {"id": "n1", "name": "big-1", "token_hash": "x", "status": "ready",
            "draining": False, "last_heartbeat": time.time(), "registered_at": 0,
            "create_index": 1, "modify_index": 1, "pool": "default", "provider": "onprem",
            "capacity": {"cpu_milli": 64000, "memory_mib": 262144, "gpu": 0}}
    jobs, allocs = [], []
    for j in range(JOBS):
        job_id = f"job-{j:05d}"
        jobs.append({
            "id": job_id, "version": 1, "stopped": False, "parent": None, "unplaced": {},
            "exhausted": {}, "submit_time": 1_700_000_000 + j, "create_index": 2,
            "modify_index": 2,
            "spec": {"id": job_id, "type": "batch", "priority": j % 100,
                     "queue": f"q{j % 7}", "schedule": None, "depends_on": [],
                     "groups": [{"name": "main", "count": ALLOCS_PER_JOB,
                                 "resources": {"cpu": 10, "memory": 16, "gpu": 0},
                                 "task": {"driver": "exec", "command": ["true"]}}]}})
        for i in range(ALLOCS_PER_JOB):
            allocs.append({
                "id": f"{j:016x}{i:016x}", "job_id": job_id, "group": "main", "index": i,
                "node_id": "n1", "desired_status": "run", "client_status": "complete",
                "resources": {"cpu_milli": 10, "memory_mib": 16}, "create_index": 3,
                "modify_index": 3})
    return {"version": 1, "index": 10, "servers": [], "nodes": [node], "jobs": jobs,
            "allocations": allocs, "pools": [], "launches": [], "queues": []}


@pytest.fixture(scope="module")
def big(master):
    commit(master, {"type": "state.restore", "snapshot": _big_state()})
    assert len(master.machine.allocations) == JOBS * ALLOCS_PER_JOB
    return master


def _timed(browser, path: str, **params) -> tuple[float, str]:
    best, text = float("inf"), ""
    for _ in range(3):
        started = time.perf_counter()
        answer = browser.get(path, params=params)
        best = min(best, time.perf_counter() - started)
        assert answer.status_code == 200
        text = answer.text
    return best, text


@pytest.mark.parametrize("params", [{}, {"status": "complete", "sort": "-submitted"},
                                    {"sort": "status", "page": 150}])
def test_the_jobs_page_holds_one_page_of_rows_small_and_quick(big, browser, params):
    seconds, text = _timed(browser, "/ui/jobs", **params)
    print(f"/ui/jobs {params}: {len(text)} bytes in {seconds * 1000:.0f} ms")
    assert text.count("<tr data-job=") == 25
    assert len(text.encode()) < BUDGET_BYTES
    assert seconds < BUDGET_SECONDS


def test_a_job_page_and_the_overview_stay_quick_in_a_big_state(big, browser):
    for path in ("/ui/jobs/job-04999", "/ui/", "/ui/nodes", "/ui/queues"):
        seconds, text = _timed(browser, path)
        print(f"{path}: {len(text)} bytes in {seconds * 1000:.0f} ms")
        assert len(text.encode()) < BUDGET_BYTES
        assert seconds < BUDGET_SECONDS
