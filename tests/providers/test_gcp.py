"""The gcp provider driven through the real google-cloud-compute client against a fake GCE."""

from __future__ import annotations

import pytest

from federation.errors import CapacityError
from federation.providers.base import Bootstrap
from federation.providers.gcp import GCPProvider
from federation.specs.pool import PoolSpec
from tests.fakes.gce_server import FakeGCE

BOOT = Bootstrap(servers=("http://10.0.0.1:4780",), join_token="join-secret", cluster="prod")


@pytest.fixture
def gce():
    fake = FakeGCE().start()
    try:
        yield fake
    finally:
        fake.stop()


def make_pool(gce, **extra):
    spec = {
        "name": "gcp-burst", "provider": "gcp", "region": "us-central1",
        "zones": ["us-central1-a", "us-central1-b"], "max_nodes": 10,
        "instance_types": ["e2-standard-2", "e2-standard-4"],
        "settings": {"project": "proj", "endpoint_url": gce.url, "anonymous": True,
                     "cluster": "prod"},
    }  # fmt: skip
    spec.update(extra)
    return PoolSpec.model_validate(spec)


def test_catalog_from_the_shipped_table(gce):
    types = {t.name: t for t in GCPProvider().catalog(make_pool(gce))}
    assert set(types) == {"e2-standard-2", "e2-standard-4"}
    assert (types["e2-standard-2"].cpu_milli, types["e2-standard-2"].memory_mib) == (2000, 8192)
    assert types["e2-standard-2"].zones == ("us-central1-a", "us-central1-b")


def test_launch_inserts_labelled_instances_with_startup_script(gce):
    result = GCPProvider().launch(make_pool(gce), "e2-standard-2", 2, "tok-1", BOOT)
    assert len(result.instances) == 2 and result.shortfall == 0
    assert len(gce.instances) == 2
    for (project, zone, _), raw in gce.instances.items():
        assert (project, zone) == ("proj", "us-central1-a")
        assert raw["machineType"].endswith("machineTypes/e2-standard-2")
        assert raw["labels"] == {
            "federation-cluster": "prod",
            "federation-pool": "gcp-burst",
            "federation-request": "tok-1",
        }
        (item,) = raw["metadata"]["items"]
        assert item["key"] == "startup-script" and "FEDERATION_TOKEN=join-secret" in item["value"]
        (start,) = [x for x in item["value"].splitlines() if x.startswith("ExecStart=")]
        assert " --provider gcp " in start and start.endswith(" --instance-metadata gcp")
        assert "scheduling" not in raw or raw["scheduling"].get("provisioningModel") != "SPOT"
    assert all(i.id.startswith("us-central1-a/") and i.state == "running" for i in result.instances)


def test_same_token_twice_does_not_launch_twice(gce):
    pool = make_pool(gce)
    first = GCPProvider().launch(pool, "e2-standard-2", 2, "tok-1", BOOT)
    again = GCPProvider().launch(pool, "e2-standard-2", 2, "tok-1", BOOT)
    assert len(gce.instances) == 2
    assert {i.id for i in again.instances} == {i.id for i in first.instances}


def test_zone_exhausted_moves_to_the_next_zone(gce):
    gce.exhausted_zones.add("us-central1-a")
    result = GCPProvider().launch(make_pool(gce), "e2-standard-4", 2, "tok-z", BOOT)
    assert {i.zone for i in result.instances} == {"us-central1-b"}
    assert {k[1] for k in gce.instances} == {"us-central1-b"}
    assert any("ZONE_RESOURCE_POOL_EXHAUSTED" in f for f in result.failures)


def test_every_zone_exhausted_is_a_capacity_error(gce):
    gce.exhausted_zones.update({"us-central1-a", "us-central1-b"})
    with pytest.raises(CapacityError):
        GCPProvider().launch(make_pool(gce), "e2-standard-2", 1, "tok-none", BOOT)
    assert gce.instances == {}


def test_spot_scheduling_when_allowed(gce):
    GCPProvider().launch(make_pool(gce, spot="only"), "e2-standard-2", 1, "tok-s", BOOT)
    (raw,) = gce.instances.values()
    assert raw["scheduling"]["provisioningModel"] == "SPOT"


def test_list_by_label_and_delete(gce):
    provider = GCPProvider()
    pool = make_pool(gce)
    other = make_pool(gce, name="other")
    launched = provider.launch(pool, "e2-standard-2", 2, "tok-a", BOOT)
    provider.launch(other, "e2-standard-2", 1, "tok-b", BOOT)
    listed = provider.list_instances(pool)
    assert {i.id for i in listed} == {i.id for i in launched.instances}
    assert all(i.request_token == "tok-a" and i.instance_type == "e2-standard-2" for i in listed)
    provider.terminate(pool, [listed[0].id, "us-central1-a/gone"], "tok-del")
    provider.terminate(pool, [listed[0].id], "tok-del")  # repeated: nothing left to do
    assert {i.id for i in provider.list_instances(pool)} == {listed[1].id}
    assert len(provider.list_instances(other)) == 1
