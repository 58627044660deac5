"""Plugin discovery through entry points, the local provider, the on-prem provider, pool specs."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest

from federation.errors import CapacityError, ProviderError, ValidationError
from federation.providers.base import Bootstrap, load_provider
from federation.providers.local import LocalProvider
from federation.providers.onprem import OnPremProvider
from federation.specs.pool import PoolSpec, parse_pool

BOOT = Bootstrap(servers=("http://127.0.0.1:4780",), join_token="join-secret")
SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_third_party_plugin_is_found_without_core_changes(tmp_path, monkeypatch):
    """A package installed on sys.path with a dist-info declaring the entry point."""
    (tmp_path / "acme_cloud.py").write_text(
        textwrap.dedent("""
        from federation.providers.base import InstanceType, LaunchResult, Provider

        class AcmeProvider(Provider):
            name = "acme"
            def catalog(self, pool):
                return [InstanceType("acme.small", 1000, 2048, 0, 0.01)]
            def launch(self, pool, instance_type, count, token, bootstrap):
                return LaunchResult(token, count, ())
            def terminate(self, pool, instance_ids, token):
                return None
            def list_instances(self, pool):
                return []
    """)
    )
    dist = tmp_path / "acme_cloud-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-cloud\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[federation.providers]\nacme = acme_cloud:AcmeProvider\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    provider = load_provider("acme", {"key": "v"})
    pool = PoolSpec(name="acme-pool", provider="acme")
    assert provider.name == "acme" and provider.config == {"key": "v"}
    assert [t.name for t in provider.catalog(pool)] == ["acme.small"]


def test_builtin_providers_load_and_unknown_names_fail():
    assert isinstance(load_provider("local"), LocalProvider)
    assert load_provider("aws").name == "aws" and load_provider("gcp").name == "gcp"
    with pytest.raises(ProviderError, match="unknown provider"):
        load_provider("nope")


@pytest.fixture
def local(tmp_path):
    provider = LocalProvider()
    pool = PoolSpec(name="dev", provider="local", settings={
        "state_dir": str(tmp_path), "command": SLEEP,
    })  # fmt: skip
    yield provider, pool
    provider.terminate(pool, [i.id for i in provider.list_instances(pool)], "cleanup")


def test_local_launch_list_terminate(local):
    provider, pool = local
    assert [t.name for t in provider.catalog(pool)] == [
        "local-small",
        "local-medium",
        "local-large",
    ]
    result = provider.launch(pool, "local-medium", 2, "tok-1", BOOT)
    assert len(result.instances) == 2
    listed = provider.list_instances(pool)
    assert {i.id for i in listed} == {i.id for i in result.instances}
    assert all(i.state == "running" and i.instance_type == "local-medium" for i in listed)
    again = provider.launch(pool, "local-medium", 2, "tok-1", BOOT)  # same token: no new process
    assert {i.id for i in again.instances} == {i.id for i in result.instances}
    assert len(provider.list_instances(pool)) == 2
    provider.terminate(pool, [listed[0].id], "tok-down")
    provider.terminate(pool, [listed[0].id], "tok-down")  # already gone: fine
    assert [i.id for i in provider.list_instances(pool)] == [listed[1].id]


def test_local_state_survives_a_new_provider_object(local):
    provider, pool = local
    provider.launch(pool, "local-small", 1, "tok-2", BOOT)
    fresh = LocalProvider()
    assert len(fresh.list_instances(pool)) == 1
    fresh.launch(pool, "local-small", 1, "tok-2", BOOT)
    assert len(fresh.list_instances(pool)) == 1


def test_local_default_command_is_the_agent(tmp_path):
    from federation.providers.local import CATALOG, default_agent_command

    pool = PoolSpec(name="dev", provider="local", labels={"team": "ml"})
    argv = default_agent_command(pool, CATALOG[1], "n1", tmp_path, BOOT)
    assert argv[:4] == [sys.executable, "-m", "federation.cli.main", "agent"]
    assert argv[argv.index("--cpu") + 1] == "2000" and "team=ml" in argv


def test_onprem_power_hooks_and_availability(tmp_path):
    log = tmp_path / "power.log"
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        textwrap.dedent(f"""
        power_on: "echo on {{name}} >> {log}"
        power_off: "echo off {{name}} >> {log}"
        hosts:
          - {{name: h1, address: 10.0.0.1, rack: r1, zone: dc1, cpu_milli: 16000,
              memory_mib: 65536}}
          - {{name: h2, address: 10.0.0.2, rack: r2, zone: dc1, cpu_milli: 16000,
              memory_mib: 65536}}
    """)
    )
    provider = OnPremProvider()
    pool = PoolSpec(
        name="racks", provider="onprem", preference=0, settings={"inventory": str(inventory)}
    )
    (itype,) = provider.catalog(pool)
    assert (itype.name, itype.price_per_hour, itype.available) == ("host-16c-64g", 0.0, 2)
    result = provider.launch(pool, itype.name, 1, "tok-1", BOOT)
    assert [i.id for i in result.instances] == ["h1"]
    assert provider.launch(pool, itype.name, 1, "tok-1", BOOT).instances[0].id == "h1"
    assert provider.catalog(pool)[0].available == 1
    assert [i.id for i in provider.list_instances(pool)] == ["h1"]
    provider.terminate(pool, ["h1"], "tok-off")
    assert provider.list_instances(pool) == []
    assert log.read_text().split("\n")[:2] == ["on h1", "off h1"]


def test_onprem_without_hooks_cannot_add_hosts(tmp_path):
    inventory = tmp_path / "inv.yaml"
    inventory.write_text("hosts: [{name: h1, cpu_milli: 8000, memory_mib: 32768}]\n")
    pool = PoolSpec(name="racks", provider="onprem", settings={"inventory": str(inventory)})
    assert [i.id for i in OnPremProvider().list_instances(pool)] == ["h1"]
    with pytest.raises(CapacityError):
        OnPremProvider().launch(pool, "host-8c-32g", 1, "t", BOOT)


VALID = {
    "name": "aws-burst",
    "provider": "aws",
    "region": "us-east-1",
    "zones": ["us-east-1a"],
    "max_nodes": 20,
    "instance_types": ["m5.large"],
    "spot": "prefer",
    "scale_down_idle": "5m",
    "max_price_per_hour": 50,
}


def test_pool_spec_parses_durations_and_defaults():
    pool = parse_pool(VALID)
    assert pool.scale_down_idle == 300.0 and pool.min_nodes == 0 and pool.preference == 10
    assert parse_pool({**VALID, "scale_down_idle": "1h30m"}).scale_down_idle == 5400.0


@pytest.mark.parametrize("change,field,words", [
    ({"min_nodes": 5, "max_nodes": 2}, "", "min_nodes (5) is greater than max_nodes (2)"),
    ({"name": "Bad_Name"}, "name", "a-z"),
    ({"spot": "sometimes"}, "spot", "never"),
    ({"scale_down_idle": "soon"}, "scale_down_idle", "not a duration"),
    ({"max_price_per_hour": 0}, "max_price_per_hour", "greater than 0"),
    ({"requirements": {"min_cpu_milli": 1000}}, "", "not both"),
    ({"region": None}, "", "needs a region"),
    ({"zones": ["eu-west-1a"]}, "", "not in region"),
    ({"instance_types": []}, "instance_types", "must not be empty"),
    ({"colour": "blue"}, "colour", "Extra inputs"),
])  # fmt: skip
def test_pool_spec_errors_are_clear(change, field, words):
    with pytest.raises(ValidationError) as err:
        parse_pool({**VALID, **change})
    assert words in err.value.message
    assert (err.value.field or "") == field
