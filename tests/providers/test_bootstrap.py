"""The boot script cloud instances run: the agent command it starts, read by the real CLI."""

from __future__ import annotations

import shlex

import pytest
import typer

from federation.cli.main import app
from federation.errors import ProviderError
from federation.providers.base import Bootstrap
from federation.providers.bootstrap import agent_script
from federation.specs.pool import PoolSpec

BOOT = Bootstrap(servers=("http://10.0.0.1:4780", "http://10.0.0.2:4780"),
                 join_token="join-secret", labels={"team": "ml"})


def pool(provider: str) -> PoolSpec:
    return PoolSpec.model_validate({"name": f"{provider}-burst", "provider": provider,
                                    "region": "r1", "max_nodes": 4, "labels": {"tier": "b"}})


def agent_options(script: str) -> dict[str, object]:
    """The options of the `federation agent` command the script's service starts, as the
    command line parser of the agent reads them."""
    (line,) = [x for x in script.splitlines() if x.startswith("ExecStart=")]
    argv = shlex.split(line.removeprefix("ExecStart="))
    assert argv[:3] == ["/usr/bin/env", "federation", "agent"]
    command = typer.main.get_command(app).commands["agent"]  # type: ignore[attr-defined]
    return command.make_context("agent", argv[3:]).params


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_a_cloud_boot_script_has_the_agent_read_its_identity_from_metadata(cloud):
    options = agent_options(agent_script(pool(cloud), BOOT, instance_metadata=cloud))
    assert options["instance_metadata"] == cloud
    assert options["provider"] == cloud
    assert options["pool"] == f"{cloud}-burst"
    assert options["server"] == "http://10.0.0.1:4780,http://10.0.0.2:4780"
    assert options["labels"] == "team=ml,tier=b"
    # per-instance values are never baked into a script shared by all instances of a launch
    assert (options["instance_id"], options["zone"], options["instance_type"]) == ("", "", "")


def test_without_a_metadata_service_the_script_reads_no_metadata():
    options = agent_options(agent_script(pool("onprem"), BOOT))
    assert options["instance_metadata"] == ""
    assert options["provider"] == "onprem"


def test_the_join_token_goes_to_the_environment_file_not_the_command_line():
    script = agent_script(pool("aws"), BOOT, instance_metadata="aws")
    assert "FEDERATION_TOKEN=join-secret" in script
    (line,) = [x for x in script.splitlines() if x.startswith("ExecStart=")]
    assert "join-secret" not in line


def test_a_token_that_cannot_be_quoted_safely_is_refused():
    with pytest.raises(ProviderError, match="join token"):
        agent_script(pool("aws"), Bootstrap(servers=("http://a:1",), join_token="x'\n; rm"))
