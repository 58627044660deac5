"""What changed between two versions of a spec, as field paths (job history)."""

from __future__ import annotations

import pytest

from federation.specs.diff import MAX_CHANGES, changed_fields

BASE = {"id": "web", "priority": 50, "groups": [
    {"name": "a", "count": 1, "task": {"command": ["sleep", "1"], "env": {"X": "1"}}},
    {"name": "b", "count": 2, "task": {"command": ["true"], "env": {}}}]}


def edited(**changes) -> dict:
    groups = [dict(g, task=dict(g["task"])) for g in BASE["groups"]]
    for path, value in changes.items():
        index, *keys = path.split("__")
        target = groups[int(index[1:])]
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return {**BASE, "groups": groups}


@pytest.mark.parametrize(("new", "paths"), [
    (BASE, []),
    ({**BASE, "priority": 70}, ["priority"]),
    (edited(g1__count=5), ["groups[1].count"]),
    (edited(g0__task__command=["sleep", "2"]), ["groups[0].task.command"]),
    (edited(g0__task__env={"X": "2", "Y": "3"}),
     ["groups[0].task.env.X", "groups[0].task.env.Y"]),
    ({**BASE, "groups": BASE["groups"][:1]}, ["groups"]),  # a group removed: the list
    ({**BASE, "schedule": "* * * * *"}, ["schedule"]),
])
def test_changed_fields_name_each_difference(new, paths) -> None:
    assert changed_fields(BASE, new) == paths


def test_changes_are_bounded() -> None:
    old = {f"k{i}": i for i in range(500)}
    new = {f"k{i}": i + 1 for i in range(500)}
    assert len(changed_fields(old, new)) == MAX_CHANGES
