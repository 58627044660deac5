"""The `federation` command and the agent start without what only a server needs: every CLI
call and every agent start would otherwise pay for the server's web stack, scheduler and
numpy (about a second of CPU each)."""

from __future__ import annotations

import subprocess
import sys

SERVER_ONLY = ("fastapi", "uvicorn", "numpy", "jinja2", "federation.server.master",
               "federation.scheduler.planner", "federation.api.app")


def loaded_after(statement: str) -> list[str]:
    probe = (f"import sys; {statement}; "
             f"print(' '.join(m for m in {SERVER_ONLY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60, check=True)
    return out.stdout.split()


def test_the_cli_and_the_agent_load_nothing_only_a_server_needs() -> None:
    assert loaded_after("import federation.cli.main, federation.agent.agent") == []


def test_the_server_command_still_loads_its_stack_when_it_runs() -> None:
    # The same probe sees the modules once a server is imported: the check above can fail.
    assert set(loaded_after("import federation.server.master")) >= {
        "fastapi", "uvicorn", "federation.api.app"}
