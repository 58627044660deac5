"""Every Terraform file is formatted, and every module whose providers exist here validates."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.terraform.conftest import TERRAFORM_DIR, Terraform

# Modules that need no provider, and those that need hashicorp/aws from the local mirror.
# gcp-control-plane needs hashicorp/google, which cannot be installed here.
BUILTIN_ONLY = ["modules/server-bootstrap", "modules/onprem"]
NEEDS_AWS = ["modules/aws-control-plane", "examples/hybrid"]


def test_every_terraform_file_is_formatted(terraform: Terraform) -> None:
    result = terraform.run(TERRAFORM_DIR, "fmt", "-check", "-recursive", "-diff", check=False)
    assert result.returncode == 0, f"unformatted files:\n{result.stdout}{result.stderr}"


def test_every_module_and_example_has_readme_and_versions() -> None:
    roots = [p for p in (TERRAFORM_DIR / "modules").iterdir() if p.is_dir()]
    roots += [p for p in (TERRAFORM_DIR / "examples").iterdir() if p.is_dir()]
    assert {p.name for p in roots} >= {
        "aws-control-plane",
        "gcp-control-plane",
        "onprem",
        "server-bootstrap",
        "hybrid",
    }
    for root in roots:
        assert (root / "README.md").is_file(), f"{root.name} has no README.md"
        versions = (root / "versions.tf").read_text()
        assert "required_version" in versions, f"{root.name}/versions.tf pins no Terraform range"


@pytest.mark.parametrize("module", BUILTIN_ONLY)
def test_builtin_only_module_validates(
    terraform: Terraform, terraform_copy: Path, module: str
) -> None:
    root = terraform_copy / module
    terraform.run(root, "init", "-backend=false")
    terraform.run(root, "validate")


@pytest.mark.parametrize("module", NEEDS_AWS)
def test_aws_module_validates(
    terraform: Terraform, terraform_copy: Path, plugin_dir: Path, module: str
) -> None:
    root = terraform_copy / module
    terraform.run(root, "init", "-backend=false", f"-plugin-dir={plugin_dir}")
    terraform.run(root, "validate")
