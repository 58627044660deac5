"""The aws provider against a real moto EC2 server."""

from __future__ import annotations

import uuid

import boto3
import httpx
import pytest

from federation.errors import CapacityError, ProviderError
from federation.providers.aws import AWSProvider, provision
from federation.providers.base import Bootstrap
from federation.specs.pool import PoolSpec

BOOT = Bootstrap(servers=("http://10.0.0.1:4780",), join_token="join-secret", cluster="prod")


@pytest.fixture
def ec2(moto_url, aws_env):
    httpx.post(moto_url + "/moto-api/reset")
    return boto3.client("ec2", region_name="us-east-1", endpoint_url=moto_url)


@pytest.fixture
def ami(ec2):
    images = ec2.describe_images(Owners=["amazon"])["Images"]
    return sorted(i["ImageId"] for i in images)[0]


def make_pool(moto_url, ami, **extra):
    spec = {
        "name": "burst", "provider": "aws", "region": "us-east-1",
        "zones": ["us-east-1a", "us-east-1b"], "max_nodes": 20,
        "instance_types": ["m5.large", "c5.2xlarge", "g5.xlarge"],
        "settings": {"endpoint_url": moto_url, "image": ami, "cluster": "prod"},
    }  # fmt: skip
    spec.update(extra)
    return PoolSpec.model_validate(spec)


def tags_of(raw):
    return {t["Key"]: t["Value"] for t in raw.get("Tags", [])}


def all_instances(ec2):
    return [
        i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
        if i["State"]["Name"] != "terminated"
    ]  # fmt: skip


def test_catalog_shapes_from_ec2_and_prices_from_table(moto_url, ami):
    types = {t.name: t for t in AWSProvider().catalog(make_pool(moto_url, ami))}
    assert list(types) == ["m5.large", "c5.2xlarge", "g5.xlarge"]
    assert (types["m5.large"].cpu_milli, types["m5.large"].memory_mib) == (2000, 8192)
    assert types["g5.xlarge"].gpu == 1
    assert types["m5.large"].price_per_hour == pytest.approx(0.096)
    assert types["m5.large"].spot_price_per_hour < types["m5.large"].price_per_hour
    assert "us-east-1a" in types["m5.large"].zones


def test_launch_creates_exactly_the_instances_with_type_and_tags(ec2, moto_url, ami):
    pool = make_pool(moto_url, ami)
    token = uuid.uuid4().hex
    result = AWSProvider().launch(pool, "m5.large", 3, token, BOOT)
    assert len(result.instances) == 3 and result.shortfall == 0
    raw = all_instances(ec2)
    assert len(raw) == 3
    for inst in raw:
        assert inst["InstanceType"] == "m5.large"
        assert inst["ImageId"] == ami
        tags = tags_of(inst)
        assert tags["federation:cluster"] == "prod"
        assert tags["federation:pool"] == "burst"
        assert tags["federation:request"] == token
    assert {i.id for i in result.instances} == {i["InstanceId"] for i in raw}


def test_user_data_starts_the_agent_with_servers_and_token(ec2, moto_url, ami):
    result = AWSProvider().launch(make_pool(moto_url, ami), "m5.large", 1, "tok-ud", BOOT)
    attr = ec2.describe_instance_attribute(InstanceId=result.instances[0].id, Attribute="userData")
    import base64

    script = base64.b64decode(attr["UserData"]["Value"]).decode()
    assert "federation agent" in script.replace("'", "")
    assert "http://10.0.0.1:4780" in script
    assert "FEDERATION_TOKEN=join-secret" in script
    (start,) = [x for x in script.splitlines() if x.startswith("ExecStart=")]
    assert " --provider aws " in start and start.endswith(" --instance-metadata aws")


def test_same_token_twice_does_not_launch_twice(ec2, moto_url, ami):
    provider = AWSProvider()
    pool = make_pool(moto_url, ami)
    first = provider.launch(pool, "m5.large", 2, "tok-1", BOOT)
    again = provider.launch(pool, "m5.large", 2, "tok-1", BOOT)
    assert len(all_instances(ec2)) == 2
    assert {i.id for i in again.instances} == {i.id for i in first.instances}
    # a fresh provider (a new leader) resumes from the tags, not from memory
    AWSProvider().launch(pool, "m5.large", 3, "tok-1", BOOT)
    assert len(all_instances(ec2)) == 3


def test_list_by_tags_and_terminate(ec2, moto_url, ami):
    provider = AWSProvider()
    pool = make_pool(moto_url, ami)
    other = make_pool(moto_url, ami, name="other")
    launched = provider.launch(pool, "c5.2xlarge", 2, "tok-a", BOOT)
    provider.launch(other, "m5.large", 1, "tok-b", BOOT)
    ec2.run_instances(ImageId=ami, InstanceType="m5.large", MinCount=1, MaxCount=1)  # not ours
    listed = provider.list_instances(pool)
    assert {i.id for i in listed} == {i.id for i in launched.instances}
    assert all(i.instance_type == "c5.2xlarge" and i.request_token == "tok-a" for i in listed)
    provider.terminate(pool, [listed[0].id, "i-0123456789abcdef0"], "tok-down")
    assert {i.id for i in provider.list_instances(pool)} == {listed[1].id}
    assert len(provider.list_instances(other)) == 1


def test_spot_launch_is_marked_spot(ec2, moto_url, ami):
    pool = make_pool(moto_url, ami, spot="only")
    result = AWSProvider().launch(pool, "m5.large", 1, "tok-spot", BOOT)
    assert [i.spot for i in result.instances] == [True]


def test_unknown_instance_type_is_a_provider_error(moto_url, ami, aws_env):
    with pytest.raises(ProviderError):
        AWSProvider().launch(make_pool(moto_url, ami), "m5.gigantic", 1, "tok-x", BOOT)


def test_capacity_errors_move_from_spot_to_on_demand(ec2, moto_url, ami, monkeypatch):
    """The launch loop falls back when a market/zone has no capacity (EC2's error code)."""
    from botocore.exceptions import ClientError

    real = provision.call

    def spot_exhausted(fn, pagination=False, **kwargs):
        if getattr(fn, "__name__", "") == "run_instances" and "InstanceMarketOptions" in kwargs:
            err = {"Error": {"Code": "InsufficientInstanceCapacity", "Message": "none left"}}
            raise provision.translate(ClientError(err, "RunInstances"))
        return real(fn, pagination=pagination, **kwargs)

    monkeypatch.setattr(provision, "call", spot_exhausted)
    pool = make_pool(moto_url, ami, spot="prefer")
    result = AWSProvider().launch(pool, "m5.large", 2, "tok-fb", BOOT)
    assert [i.spot for i in result.instances] == [False, False]
    assert len(result.failures) == 2  # spot refused in both zones first
    only = make_pool(moto_url, ami, spot="only")
    with pytest.raises(CapacityError):
        AWSProvider().launch(only, "m5.large", 1, "tok-only", BOOT)


@pytest.mark.parametrize(
    "code,status,kind",
    [
        ("InsufficientInstanceCapacity", 500, "CapacityError"),
        ("VcpuLimitExceeded", 400, "QuotaError"),
        ("UnauthorizedOperation", 403, "AuthError"),
        ("RequestLimitExceeded", 503, "TransientError"),
        ("InternalError", 500, "TransientError"),
        ("InvalidParameterValue", 400, "ProviderError"),
    ],
)
def test_error_translation(code, status, kind):
    from botocore.exceptions import ClientError

    err = ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "RunInstances",
    )
    assert type(provision.translate(err)).__name__ == kind
