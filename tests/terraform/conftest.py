"""Fixtures of the Terraform tests: the terraform binary, the local provider mirror, scratch
copies of `terraform/`, rendering through the shared bootstrap module, and a moto server."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = REPO / "terraform"
PLUGIN_DIR_ENV = "FEDERATION_TF_PLUGIN_DIR"
# Where provider mirrors usually live; the whole file system is searched last.
PLUGIN_SEARCH_ROOTS = ("/opt", "/usr/local/share", "/usr/share", str(Path.home()), "/")
SKIPPED_ROOTS = {"/proc", "/sys", "/dev", "/run", "/tmp"}


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_plugin_dir() -> Path | None:
    """Root of a provider mirror holding hashicorp/aws: the directory above
    registry.terraform.io, from FEDERATION_TF_PLUGIN_DIR or found on disk."""
    configured = os.environ.get(PLUGIN_DIR_ENV)
    if configured:
        return Path(configured)
    for root in PLUGIN_SEARCH_ROOTS:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in SKIPPED_ROOTS]
            if any(name.startswith("terraform-provider-aws") for name in filenames):
                path = Path(dirpath)
                for parent in path.parents:
                    if parent.name == "registry.terraform.io":
                        return parent.parent
    return None


@dataclass(frozen=True)
class Terraform:
    """Runs the terraform binary with a clean, non-interactive environment."""

    binary: str
    cli_config: Path

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
        env.update(
            {
                "TF_IN_AUTOMATION": "1",
                "TF_INPUT": "0",
                "CHECKPOINT_DISABLE": "1",
                "TF_CLI_CONFIG_FILE": str(self.cli_config),
            }
        )
        env.update(extra or {})
        return env

    def run(
        self,
        cwd: Path,
        *args: str,
        env: dict[str, str] | None = None,
        timeout: float = 120,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, *args, "-no-color"] if args[0] != "fmt" else [self.binary, *args],
            cwd=cwd,
            env=self.env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"terraform {' '.join(args)} failed ({result.returncode}) in {cwd}:\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    def outputs(self, cwd: Path, env: dict[str, str] | None = None) -> dict[str, object]:
        raw = json.loads(self.run(cwd, "output", "-json", env=env).stdout)
        return {name: item["value"] for name, item in raw.items()}


@pytest.fixture(scope="session")
def terraform(tmp_path_factory: pytest.TempPathFactory) -> Terraform:
    binary = shutil.which("terraform")
    if binary is None:
        pytest.skip("the terraform binary is not on PATH")
    cli_config = tmp_path_factory.mktemp("tfcli") / "terraformrc"
    cli_config.write_text("")
    return Terraform(binary=binary, cli_config=cli_config)


@pytest.fixture(scope="session")
def plugin_dir() -> Path:
    found = find_plugin_dir()
    if found is None or not (found / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
        pytest.skip(f"no hashicorp/aws provider mirror (set {PLUGIN_DIR_ENV})")
    return found


@pytest.fixture
def terraform_copy(tmp_path: Path) -> Path:
    """A scratch copy of terraform/: init, state and plans never touch the work tree."""
    target = tmp_path / "terraform"
    shutil.copytree(
        TERRAFORM_DIR,
        target,
        ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl"),
    )
    return target


def hcl(value: object) -> str:
    """A Python value as an HCL expression (JSON is valid HCL for these values)."""
    return json.dumps(value)


@dataclass(frozen=True)
class Rendered:
    """A root module applied with no resource: its outputs and what Terraform printed."""

    outputs: dict[str, Any]  # name -> {"value", "sensitive", "type"}, as `output -json` gives
    printed: str  # plan, apply and `terraform output` text

    def value(self, name: str) -> Any:
        return self.outputs[name]["value"]


@pytest.fixture
def render_module(terraform: Terraform, terraform_copy: Path):
    """Applies a root module calling terraform/modules/<module> with the given inputs and
    forwarding the given outputs; `secrets` are passed as sensitive root variables."""
    counter = iter(range(1000))

    def render(
        module: str,
        inputs: dict[str, object],
        outputs: list[str],
        secrets: dict[str, str] | None = None,
    ) -> Rendered:
        secrets = secrets or {}
        root = terraform_copy / "render" / str(next(counter))
        root.mkdir(parents=True)
        lines = [f'module "under_test" {{\n  source = "../../modules/{module}"']
        lines += [f"  {name} = {hcl(value)}" for name, value in inputs.items()]
        lines += [f"  {name} = var.{name}" for name in secrets]
        lines.append("}")
        for name in secrets:
            lines.append(f'variable "{name}" {{\n  type      = string\n  sensitive = true\n}}')
        for name in outputs:
            lines.append(
                f'output "{name}" {{\n  value     = module.under_test.{name}\n'
                f"  sensitive = {str(name in SENSITIVE_OUTPUTS.get(module, ())).lower()}\n}}"
            )
        (root / "main.tf").write_text("\n\n".join(lines) + "\n")
        env = {f"TF_VAR_{name}": value for name, value in secrets.items()}
        terraform.run(root, "init", "-backend=false", env=env)
        plan = terraform.run(root, "plan", "-out=tfplan", env=env)
        apply = terraform.run(root, "apply", "-auto-approve", "tfplan", env=env)
        printed = terraform.run(root, "output", env=env).stdout
        raw = json.loads(terraform.run(root, "output", "-json", env=env).stdout)
        return Rendered(outputs=raw, printed=plan.stdout + apply.stdout + printed)

    return render


# Outputs a module marks sensitive: a root module forwarding them must say so too.
SENSITIVE_OUTPUTS = {"onprem": ("host_files",)}


@pytest.fixture
def render_bootstrap(render_module):
    """Renders the shared bootstrap module with the given inputs; returns its output values."""

    def render(**inputs: object) -> dict[str, Any]:
        rendered = render_module("server-bootstrap", inputs, ["servers", "api_endpoints"])
        return {name: rendered.value(name) for name in rendered.outputs}

    return render


@dataclass(frozen=True)
class MotoServer:
    endpoint: str
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """A moto server on a free loopback port, stopped at the end of the module."""
    port = free_port()
    # The moto of the interpreter running the tests, whatever else is on PATH.
    command = [sys.executable, "-m", "moto.server"]
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    process = subprocess.Popen(
        [*command, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise AssertionError(f"moto_server exited with {process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("moto_server did not listen within 30 s") from None
                time.sleep(0.1)
        yield MotoServer(endpoint=f"http://127.0.0.1:{port}", process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def extract_unit(script: str) -> str:
    """The systemd unit a boot script writes (its quoted UNIT here-document)."""
    start = script.index("<<'UNIT'\n") + len("<<'UNIT'\n")
    end = script.index("\nUNIT\n", start)
    return script[start:end]


def exec_start(script: str) -> str:
    """The ExecStart command line of the unit a boot script writes."""
    lines = [line for line in extract_unit(script).splitlines() if line.startswith("ExecStart=")]
    if len(lines) != 1:
        raise AssertionError(f"expected one ExecStart line, found {len(lines)}")
    return lines[0].removeprefix("ExecStart=")


def parse_flags(argv: list[str]) -> dict[str, str]:
    """`--flag value` pairs of a command line (after the program and subcommand)."""
    flags: dict[str, str] = {}
    rest = argv[2:]
    for index in range(0, len(rest), 2):
        if not rest[index].startswith("--") or index + 1 >= len(rest):
            raise AssertionError(f"unexpected argument layout: {rest}")
        flags[rest[index]] = rest[index + 1]
    return flags
