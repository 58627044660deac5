"""`federation simulate` as a user runs it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from federation.cli.main import app

MACHINES = (
    "machine_id,cpu_milli,memory_mib,num_gpu,gpu_model\nm0,32000,65536,4,T4\nm1,8000,32768,0,\n"
)
TASKS = (
    "task_id,cpu_milli,memory_mib,num_gpu,gpu_milli_per_gpu\n"
    "t0,4000,8192,1,1000\nt1,2000,4096,1,500\nt2,8000,8192,2,1000\nt3,64000,1,0,0\n"
)


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    machines, tasks = tmp_path / "machines.csv", tmp_path / "tasks.csv"
    machines.write_text(MACHINES)
    tasks.write_text(TASKS)
    return machines, tasks


def invoke(*args: str):
    return CliRunner().invoke(app, ["simulate", *args])


def test_json_output_reports_placed_dropped_and_allocation(files):
    machines, tasks = files
    result = invoke("--machines", str(machines), "--tasks", str(tasks), "-o", "json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert (body["offered"], body["placed"], body["dropped"]) == (4, 3, 1)
    assert body["gpu_allocation_pct"] == pytest.approx(87.5)
    assert body["curve"][-1]["gpu_allocated_pct"] == pytest.approx(87.5)


def test_table_output_names_the_figures(files):
    machines, tasks = files
    result = invoke("--machines", str(machines), "--tasks", str(tasks), "--policy", "bestfit")
    assert result.exit_code == 0, result.output
    for label in ("Placed", "Dropped", "GPU allocated", "Unallocated GPUs", "Placements/s"):
        assert label in result.output


def test_placements_out_writes_one_row_per_task(files, tmp_path):
    machines, tasks = files
    out = tmp_path / "placements.csv"
    result = invoke(
        "--machines", str(machines), "--tasks", str(tasks), "--placements-out", str(out)
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert [r["task_id"] for r in rows] == ["t0", "t1", "t2", "t3"]
    assert [r["node_id"] for r in rows] == ["m0", "m0", "m0", ""]
    assert rows[2]["gpus"].count(";") == 1 and rows[3]["gpus"] == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policy", "worstfit"], "unknown policy"),
        (["--inflation", "-1"], "inflation"),
    ],
)
def test_bad_options_fail_with_one_line(files, args, message):
    machines, tasks = files
    result = invoke("--machines", str(machines), "--tasks", str(tasks), *args)
    assert result.exit_code != 0
    assert message in result.output


def test_a_missing_file_fails_with_one_line(tmp_path, files):
    _, tasks = files
    result = invoke("--machines", str(tmp_path / "nope.csv"), "--tasks", str(tasks))
    assert result.exit_code != 0 and "cannot read" in result.output
