"""`terraform apply` of the hybrid example against a moto server: three masters in three
subnets with the right tags, security group rules, instance profile and user data; secrets
only in SSM; `terraform destroy` leaves nothing behind."""

from __future__ import annotations

import base64
import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.terraform.conftest import (
    TERRAFORM_DIR,
    MotoServer,
    Terraform,
    exec_start,
    parse_flags,
)

boto3 = pytest.importorskip("boto3")

REGION = "us-east-1"
CLUSTER = "hybrid"
VPC_CIDR = "10.42.0.0/16"
ONPREM_CIDR = "192.168.10.0/24"
RAFT_SECRET = "raft-secret-7f3a9c1e5b2d4086"
API_TOKEN = "api-token-0c8e2b6d4f1a9375"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


def provider_override(endpoint: str) -> str:
    services = ["ec2", "iam", "sts", "ssm"]
    endpoints = "\n".join(f'    {name} = "{endpoint}"' for name in services)
    return f"""provider "aws" {{
  region                      = "{REGION}"
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_region_validation      = true

  endpoints {{
{endpoints}
  }}
}}
"""


@dataclass
class Applied:
    root: Path
    terraform: Terraform
    env: dict[str, str]
    moto: MotoServer
    plan_text: str
    apply_text: str
    outputs: dict[str, Any]  # `terraform output -json`: name -> {value, sensitive, type}
    timings: dict[str, float] = field(default_factory=dict)
    destroyed: bool = False

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.moto.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def destroy(self) -> subprocess.CompletedProcess[str]:
        self.destroyed = True
        return self.terraform.run(self.root, "destroy", "-auto-approve", env=self.env, timeout=150)

    def instances(self) -> list[dict[str, Any]]:
        pages = self.client("ec2").describe_instances(
            Filters=[{"Name": "tag:federation:cluster", "Values": [CLUSTER]}]
        )
        found = [i for r in pages["Reservations"] for i in r["Instances"]]
        return [i for i in found if i["State"]["Name"] != "terminated"]


@pytest.fixture(scope="module")
def applied(
    moto_server: MotoServer,
    terraform: Terraform,
    plugin_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Applied]:
    copy = tmp_path_factory.mktemp("aws") / "terraform"
    shutil.copytree(
        TERRAFORM_DIR,
        copy,
        ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl"),
    )
    root = copy / "examples" / "hybrid"
    # An override file merges into the example's provider block: the example stays as shipped.
    (root / "moto_override.tf").write_text(provider_override(moto_server.endpoint))
    env = {
        **FAKE_CREDENTIALS,
        "TF_VAR_ami_id": "ami-12c6146b",
        "TF_VAR_raft_secret": RAFT_SECRET,
        "TF_VAR_api_token": API_TOKEN,
    }
    timings: dict[str, float] = {}
    started = time.monotonic()
    terraform.run(root, "init", f"-plugin-dir={plugin_dir}", env=env)
    plan = terraform.run(root, "plan", "-out=tfplan", env=env)
    timings["init+plan"] = time.monotonic() - started
    started = time.monotonic()
    apply = terraform.run(root, "apply", "-auto-approve", "tfplan", env=env, timeout=150)
    timings["apply"] = time.monotonic() - started
    result = Applied(
        root=root,
        terraform=terraform,
        env=env,
        moto=moto_server,
        plan_text=plan.stdout + plan.stderr + terraform.run(root, "show", "tfplan", env=env).stdout,
        apply_text=apply.stdout + apply.stderr,
        outputs=json.loads(terraform.run(root, "output", "-json", env=env).stdout),
        timings=timings,
    )
    try:
        yield result
    finally:
        if not result.destroyed:
            result.destroy()


def user_data(applied: Applied, instance_id: str) -> str:
    answer = applied.client("ec2").describe_instance_attribute(
        InstanceId=instance_id, Attribute="userData"
    )
    return base64.b64decode(answer["UserData"]["Value"]).decode()


def test_three_masters_in_three_subnets_and_zones(applied: Applied) -> None:
    instances = applied.instances()
    assert len(instances) == 3
    subnets = applied.client("ec2").describe_subnets(SubnetIds=[i["SubnetId"] for i in instances])[
        "Subnets"
    ]
    assert len({s["SubnetId"] for s in subnets}) == 3
    assert len({s["AvailabilityZone"] for s in subnets}) == 3
    assert {s["VpcId"] for s in subnets} == {instances[0]["VpcId"]}
    assert sorted(applied.outputs["instance_ids"]["value"]) == sorted(
        i["InstanceId"] for i in instances
    )
    assert sorted(applied.outputs["api_endpoints"]["value"]) == sorted(
        f"http://{i['PrivateIpAddress']}:4780" for i in instances
    )


def test_masters_are_tagged_with_cluster_role_and_name(applied: Applied) -> None:
    names = set()
    for instance in applied.instances():
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        assert tags["federation:cluster"] == CLUSTER
        assert tags["federation:role"] == "server"
        assert tags["Name"] == tags["federation:server"]
        names.add(tags["Name"])
    assert names == {f"{CLUSTER}-1", f"{CLUSTER}-2", f"{CLUSTER}-3"}


def test_security_group_opens_raft_among_masters_and_api_to_given_cidrs(applied: Applied) -> None:
    instances = applied.instances()
    # moto reports the groups on the network interface, AWS on both.
    group_ids = {g["GroupId"] for i in instances for g in i.get("SecurityGroups", [])}
    group_ids |= {
        g["GroupId"] for i in instances for n in i["NetworkInterfaces"] for g in n["Groups"]
    }
    assert len(group_ids) == 1
    (group_id,) = group_ids
    (group,) = applied.client("ec2").describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    ingress = {(r["FromPort"], r["ToPort"], r["IpProtocol"]): r for r in group["IpPermissions"]}
    assert set(ingress) == {(4781, 4781, "tcp"), (4780, 4780, "tcp")}
    raft = ingress[(4781, 4781, "tcp")]
    assert [p["GroupId"] for p in raft["UserIdGroupPairs"]] == [group_id]
    assert raft["IpRanges"] == [] and raft.get("Ipv6Ranges", []) == []
    api = ingress[(4780, 4780, "tcp")]
    assert sorted(r["CidrIp"] for r in api["IpRanges"]) == sorted([VPC_CIDR, ONPREM_CIDR])
    assert api["UserIdGroupPairs"] == []


def test_user_data_starts_each_master_with_the_other_masters_as_peers(applied: Applied) -> None:
    instances = applied.instances()
    addresses = {i["InstanceId"]: i["PrivateIpAddress"] for i in instances}
    for instance in instances:
        script = user_data(applied, instance["InstanceId"])
        assert script.startswith("#!/bin/bash\n")
        flags = parse_flags(shlex.split(exec_start(script)))
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        own = addresses[instance["InstanceId"]]
        others = sorted(f"{a}:4781" for i, a in addresses.items() if i != instance["InstanceId"])
        assert flags["--id"] == tags["Name"]
        assert flags["--raft"] == f"{own}:4781"
        assert flags["--http"] == f"{own}:4780"
        assert sorted(flags["--peers"].split(",")) == others


def test_secrets_are_in_ssm_only_never_in_plan_outputs_or_user_data(applied: Applied) -> None:
    ssm = applied.client("ssm")
    for name, value in [("raft-secret", RAFT_SECRET), ("api-token", API_TOKEN)]:
        parameter = ssm.get_parameter(Name=f"/federation/{CLUSTER}/{name}", WithDecryption=True)
        assert parameter["Parameter"]["Type"] == "SecureString"
        assert parameter["Parameter"]["Value"] == value
    # `output -json` prints every value in clear: what matters is which are marked sensitive.
    in_clear = {n: o["value"] for n, o in applied.outputs.items() if not o["sensitive"]}
    sensitive = {n: o["value"] for n, o in applied.outputs.items() if o["sensitive"]}
    assert API_TOKEN in json.dumps(sensitive["agent_files"])  # the agents' token file
    human_outputs = applied.terraform.run(applied.root, "output", env=applied.env).stdout
    for secret in (RAFT_SECRET, API_TOKEN):
        assert secret not in applied.plan_text
        assert secret not in applied.apply_text
        assert secret not in json.dumps(in_clear)
        assert secret not in human_outputs
        for instance in applied.instances():
            assert secret not in user_data(applied, instance["InstanceId"])
    assert "(sensitive value)" in applied.plan_text


def test_user_data_fetches_the_secret_from_ssm(applied: Applied, tmp_path: Path) -> None:
    # Runs the script's own Python fetch step against moto, as a master would at boot.
    script = user_data(applied, applied.instances()[0]["InstanceId"])
    snippet = re.search(r"<<'PY'\n(.*?)\nPY\n", script, re.S)
    assert snippet is not None
    region = re.search(r"\"\$INSTALL_DIR/bin/python\" - '([a-z0-9-]+)'", script)
    assert region is not None and region.group(1) == REGION
    result = subprocess.run(
        [sys.executable, "-", region.group(1), f"/federation/{CLUSTER}/raft-secret"],
        input=snippet.group(1),
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **FAKE_CREDENTIALS,
            "AWS_ENDPOINT_URL": applied.moto.endpoint,
            "PATH": "/usr/bin:/bin",
        },
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == RAFT_SECRET


def test_instance_profile_grants_least_privilege_scoped_by_cluster_tag(applied: Applied) -> None:
    iam = applied.client("iam")
    profile_arns = {i["IamInstanceProfile"]["Arn"] for i in applied.instances()}
    assert len(profile_arns) == 1
    profile_name = profile_arns.pop().rsplit("/", 1)[1]
    (role,) = iam.get_instance_profile(InstanceProfileName=profile_name)["InstanceProfile"]["Roles"]
    assert iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"] == []
    names = iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]
    assert names == ["federation-server"]
    document = iam.get_role_policy(RoleName=role["RoleName"], PolicyName=names[0])["PolicyDocument"]
    if isinstance(document, str):
        document = json.loads(document)
    statements = {s["Sid"]: s for s in document["Statement"]}
    for statement in statements.values():
        assert statement["Effect"] == "Allow"
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        assert all("*" not in action for action in actions), statement
    terminate = statements["TerminateClusterInstances"]
    assert terminate["Condition"] == {
        "StringEquals": {"ec2:ResourceTag/federation:cluster": CLUSTER}
    }
    launch = statements["LaunchClusterTaggedInstances"]
    assert launch["Condition"] == {"StringEquals": {"aws:RequestTag/federation:cluster": CLUSTER}}
    assert launch["Resource"].endswith(":instance/*")
    vpc = statements["LaunchIntoClusterVpc"]
    (vpc_id,) = {i["VpcId"] for i in applied.instances()}
    account = applied.client("sts").get_caller_identity()["Account"]
    assert vpc["Condition"] == {
        "ArnEquals": {"ec2:Vpc": f"arn:aws:ec2:{REGION}:{account}:vpc/{vpc_id}"}
    }
    tag = statements["TagOnLaunchOnly"]
    assert tag["Condition"] == {"StringEquals": {"ec2:CreateAction": "RunInstances"}}
    secrets = statements["ReadClusterSecrets"]
    resources = (
        secrets["Resource"] if isinstance(secrets["Resource"], list) else [secrets["Resource"]]
    )
    assert sorted(r.rsplit(":parameter/", 1)[1] for r in resources) == sorted(
        [f"federation/{CLUSTER}/api-token", f"federation/{CLUSTER}/raft-secret"]
    )
    unscoped = [s for s in statements.values() if s.get("Resource") == "*"]
    assert [s["Sid"] for s in unscoped] == ["DescribeCapacity"]
    assert all(a.startswith("ec2:Describe") for a in statements["DescribeCapacity"]["Action"])


def test_onprem_agents_join_the_aws_masters(applied: Applied) -> None:
    endpoints = applied.outputs["api_endpoints"]["value"]
    units = applied.outputs["agent_units"]["value"]
    assert sorted(units) == ["r1-node-1", "r1-node-2", "r1-node-3"]
    for name, unit in units.items():
        line = next(x for x in unit.splitlines() if x.startswith("ExecStart="))
        flags = parse_flags(shlex.split(line.removeprefix("ExecStart=")))
        assert flags["--server"] == ",".join(endpoints)
        assert flags["--name"] == name and flags["--pool"] == "onprem"
        assert "rack=r1" in flags["--labels"].split(",")


def test_a_second_plan_is_empty_but_for_a_moto_gap(applied: Applied) -> None:
    applied.terraform.run(applied.root, "plan", "-out=replan", env=applied.env)
    plan = json.loads(
        applied.terraform.run(applied.root, "show", "-json", "replan", env=applied.env).stdout
    )
    for change in plan.get("resource_changes", []):
        actions = change["change"]["actions"]
        if actions in (["no-op"], ["read"]):
            continue
        # moto reports an instance's security groups on its network interface only (AWS
        # reports both), so the provider reads them back empty and wants to add them again.
        before, after = change["change"]["before"], change["change"]["after"]
        changed = {k for k in after if before.get(k) != after[k]}
        assert (change["type"], actions, changed) == (
            "aws_instance",
            ["update"],
            {"vpc_security_group_ids"},
        ), change["address"]
        assert before["vpc_security_group_ids"] == []


def test_destroy_leaves_nothing(applied: Applied) -> None:
    started = time.monotonic()
    applied.destroy()
    applied.timings["destroy"] = time.monotonic() - started
    ec2, iam, ssm = applied.client("ec2"), applied.client("iam"), applied.client("ssm")
    assert applied.instances() == []
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "cidr", "Values": [VPC_CIDR]}])["Vpcs"]
    assert vpcs == []
    gateways = ec2.describe_nat_gateways()["NatGateways"]
    assert [g["NatGatewayId"] for g in gateways if g["State"] not in ("deleting", "deleted")] == []
    assert ec2.describe_addresses()["Addresses"] == []
    assert (
        ec2.describe_internet_gateways(
            Filters=[{"Name": "tag:Name", "Values": [f"{CLUSTER}-federation"]}]
        )["InternetGateways"]
        == []
    )
    groups = ec2.describe_security_groups()["SecurityGroups"]
    assert [g["GroupName"] for g in groups if g["GroupName"] != "default"] == []
    assert ssm.describe_parameters()["Parameters"] == []
    assert [r["RoleName"] for r in iam.list_roles()["Roles"] if "fed-server" in r["RoleName"]] == []
    assert iam.list_instance_profiles()["InstanceProfiles"] == []
    state = json.loads(applied.terraform.run(applied.root, "show", "-json", env=applied.env).stdout)
    assert "values" not in state or not state["values"].get("root_module", {}).get("resources")
    print(f"terraform timings against moto: {applied.timings}")
