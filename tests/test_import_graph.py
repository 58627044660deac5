"""The master is the composition root: leader loops depend on the narrow port
(``federation.ports``), never on the master, and every module imports on its own.

Each module is imported first in a fresh interpreter (an import cycle shows up only for the
module imported first), and the project's imports are read statically: none inside a
function in the server or the leader loops (a lazy import there is how a cycle hides)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIRST_IMPORTS = [
    "federation.ports",
    "federation.server.scheduling",
    "federation.server.node_health",
    "federation.server.gc_loop",
    "federation.autoscaler.executor",
    "federation.server.master",
]
LEADER_LOOPS = ["federation/server/scheduling.py", "federation/server/node_health.py",
                "federation/server/gc_loop.py", "federation/autoscaler/executor.py",
                "federation/autoscaler/lifecycle.py"]


def project_imports(path: Path) -> list[tuple[str, bool]]:
    """(module, at top level) for every ``federation`` import in a file."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    for node in tree.body:  # `if TYPE_CHECKING:` imports are for annotations only
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            top.update(id(child) for child in node.body)
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        found += [(n, id(node) in top) for n in names if n.startswith("federation")]
    return found


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    # One interpreter per module: the first import is the one that finds a cycle.
    script = "; ".join(f"subprocess.run([sys.executable, '-c', 'import {m}'], check=True)"
                       for m in FIRST_IMPORTS)
    result = subprocess.run([sys.executable, "-c", f"import subprocess, sys; {script}"],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]


EVERY_MODULE_FIRST = """
import importlib, pkgutil, sys
import federation
names = sorted(m.name for m in pkgutil.walk_packages(federation.__path__, "federation."))
cycles = []
for name in names:
    for loaded in [k for k in sys.modules if k == "federation" or k.startswith("federation.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except ImportError as exc:
        if "partially initialized" in str(exc) or "circular" in str(exc):
            cycles.append(f"{name}: {exc}")
    except Exception:
        pass  # a module whose import has side effects (metrics) cannot be imported twice
print(len(names))
sys.exit(" | ".join(cycles) or None)
"""


def test_no_module_of_the_project_is_caught_in_an_import_cycle() -> None:
    # Third-party modules stay loaded between rounds, so each module of the project is
    # imported first, on its own, cheaply: a cycle shows up for whichever is imported first.
    result = subprocess.run([sys.executable, "-c", EVERY_MODULE_FIRST], capture_output=True,
                            text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.split()[-1]) > 100  # the walk found the project's modules


@pytest.mark.parametrize("path", LEADER_LOOPS)
def test_leader_loops_import_neither_the_master_nor_the_api(path: str) -> None:
    imports = [name for name, _ in project_imports(ROOT / path)]
    assert not [n for n in imports if n.startswith(("federation.server.master",
                                                    "federation.api"))], imports
    assert "federation.server" not in imports  # the package pulls in the master


@pytest.mark.parametrize("path", [*LEADER_LOOPS, "federation/server/master.py",
                                  "federation/server/leader.py", "federation/ports.py"])
def test_no_project_import_hides_inside_a_function(path: str) -> None:
    lazy = [name for name, top in project_imports(ROOT / path) if not top]
    assert lazy == []


def test_the_port_imports_nothing_of_the_project_at_run_time() -> None:
    tree = ast.parse((ROOT / "federation/ports.py").read_text())
    runtime = [n.module for n in tree.body if isinstance(n, ast.ImportFrom)]
    assert not [m for m in runtime if (m or "").startswith("federation")]
