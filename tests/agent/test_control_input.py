"""What the agent accepts for restart, signal and exec, before it touches a task."""

from __future__ import annotations

import json

import pytest

from federation.agent.control import (
    MAX_COMMAND_BYTES,
    ControlError,
    exec_command,
    exec_timeout,
    restart,
    signal_name,
)


@pytest.mark.parametrize(("given", "name"), [
    ("SIGHUP", "SIGHUP"), ("hup", "SIGHUP"), ("  usr1 ", "SIGUSR1"), ("SIGTERM", "SIGTERM")])
def test_signals_are_named_and_normalised(given, name) -> None:
    assert signal_name(given) == name


@pytest.mark.parametrize("given", ["", "9", 9, None, "SIGSEGV", "SIGFOO", "SIGHUP; rm"])
def test_other_signals_are_refused_naming_the_field(given) -> None:
    with pytest.raises(ControlError) as refused:
        signal_name(given)
    assert refused.value.status == 400 and refused.value.field == "signal"


@pytest.mark.parametrize("raw", [
    None, "", "ls", "[]", '[""]', '["a", 1]', '{"a": 1}', json.dumps(["x\0y"]),
    json.dumps(["a" * MAX_COMMAND_BYTES])])
def test_a_command_is_a_json_list_of_strings(raw) -> None:
    with pytest.raises(ControlError) as refused:
        exec_command(raw)
    assert refused.value.field == "command"


def test_a_good_command_and_timeouts() -> None:
    assert exec_command('["sh", "-c", "echo hi"]') == ["sh", "-c", "echo hi"]
    assert exec_timeout(None) == 60.0 and exec_timeout("2.5") == 2.5
    for bad in ("0", "-1", "x", "99999"):
        with pytest.raises(ControlError):
            exec_timeout(bad)


def test_an_allocation_not_on_this_node_is_a_404() -> None:
    with pytest.raises(ControlError) as refused:
        restart(None)
    assert refused.value.status == 404
