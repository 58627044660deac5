"""The strategic merge patch engine, on patches kubectl 1.37 really sent (golden files recorded
with ``kubectl apply -v=9``) and on each directive alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from federation.api.kube import smp

GOLDEN = Path(__file__).parent / "golden"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


@pytest.mark.parametrize("name", sorted(p.stem for p in GOLDEN.glob("apply_*.json")))
def test_a_kubectl_apply_patch_turns_the_live_object_into_the_applied_file(name):
    case = json.loads((GOLDEN / f"{name}.json").read_text())
    result = smp.apply_patch(case["original"], case["patch"], smp.DEPLOYMENT)
    assert result["spec"] == case["expected_spec"], case["description"]
    assert result["metadata"]["annotations"][LAST_APPLIED] == \
        case["patch"]["metadata"]["annotations"][LAST_APPLIED]


def test_the_patch_and_the_original_are_left_as_they_were():
    case = json.loads((GOLDEN / "apply_env_ports_sidecar.json").read_text())
    original, patch = json.dumps(case["original"]), json.dumps(case["patch"])
    smp.apply_patch(case["original"], case["patch"], smp.DEPLOYMENT)
    assert (json.dumps(case["original"]), json.dumps(case["patch"])) == (original, patch)


def deployment(*containers: dict) -> dict:
    return {"spec": {"replicas": 1, "template": {"spec": {"containers": list(containers)}}}}


def containers_of(obj: dict) -> list[dict]:
    return obj["spec"]["template"]["spec"]["containers"]


APP = {"name": "app", "image": "a", "resources": {"requests": {"cpu": "250m"}},
       "env": [{"name": "A", "value": "1"}]}


def test_containers_merge_by_name_so_a_field_not_in_the_patch_is_kept():
    # The classic naive-merge bug: replacing the list would drop the cpu request.
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "env": [{"name": "A", "value": "2"}]},
        {"name": "sidecar", "image": "s"}]}}}}
    result = containers_of(smp.apply_patch(deployment(APP), patch, smp.DEPLOYMENT))
    assert [c["name"] for c in result] == ["app", "sidecar"]
    assert result[0]["resources"] == {"requests": {"cpu": "250m"}}
    assert result[0]["env"] == [{"name": "A", "value": "2"}]


def test_env_merges_by_name_and_ports_by_container_port():
    # Without $setElementOrder apimachinery puts the patch's items before the server-only
    # ones (mergeSortedSlice); kubectl apply always sends the order.
    original = deployment({**APP, "ports": [{"containerPort": 80, "name": "http"}]})
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "env": [{"name": "B", "value": "x"}],
         "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 90}]}]}}}}
    (app,) = containers_of(smp.apply_patch(original, patch, smp.DEPLOYMENT))
    assert app["env"] == [{"name": "B", "value": "x"}, {"name": "A", "value": "1"}]
    assert app["ports"] == [{"containerPort": 80, "name": "http", "protocol": "TCP"},
                            {"containerPort": 90}]


def test_patch_delete_removes_the_element_with_that_key():
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "env": [{"$patch": "delete", "name": "A"}]}]}}}}
    (app,) = containers_of(smp.apply_patch(deployment(APP), patch, smp.DEPLOYMENT))
    assert app["env"] == []


def test_null_deletes_a_field_and_nested_nulls_in_new_values_mean_nothing():
    patch = {"spec": {"replicas": None, "paused": {"x": None, "y": 1}}}
    result = smp.apply_patch(deployment(APP), patch, smp.DEPLOYMENT)
    assert "replicas" not in result["spec"]
    assert result["spec"]["paused"] == {"y": 1}


def test_patch_replace_on_a_list_replaces_it_whole():
    patch = {"spec": {"template": {"spec": {"containers": [
        {"$patch": "replace"}, {"name": "only", "image": "o"}]}}}}
    result = containers_of(smp.apply_patch(deployment(APP), patch, smp.DEPLOYMENT))
    assert result == [{"name": "only", "image": "o"}]


def test_patch_replace_on_a_map_replaces_it_whole():
    patch = {"spec": {"template": {"$patch": "replace", "spec": {"containers": []}}}}
    result = smp.apply_patch(deployment(APP), patch, smp.DEPLOYMENT)
    assert result["spec"]["template"] == {"spec": {"containers": []}}


def test_retain_keys_clears_the_fields_it_does_not_list():
    original = {"spec": {"strategy": {"type": "RollingUpdate",
                                      "rollingUpdate": {"maxSurge": 1}}}}
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    assert smp.apply_patch(original, patch, smp.DEPLOYMENT)["spec"]["strategy"] == {
        "type": "Recreate"}


def test_set_element_order_orders_the_merged_list():
    original = deployment({"name": "a"}, {"name": "b"}, {"name": "c"})
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}]}}}}
    result = containers_of(smp.apply_patch(original, patch, smp.DEPLOYMENT))
    assert [c["name"] for c in result] == ["c", "a", "b"]


def test_scalar_lists_with_the_merge_strategy_are_unions_and_can_lose_items():
    original = {"metadata": {"finalizers": ["a", "b"]}}
    merged = smp.apply_patch(original, {"metadata": {"finalizers": ["c"]}}, smp.DEPLOYMENT)
    assert merged["metadata"]["finalizers"] == ["c", "a", "b"]  # patch items first
    deleted = smp.apply_patch(original, {"metadata": {
        "$deleteFromPrimitiveList/finalizers": ["a"]}}, smp.DEPLOYMENT)
    assert deleted["metadata"]["finalizers"] == ["b"]


def test_lists_without_a_strategy_are_replaced():
    original = {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "command": ["a", "b"]}]}}}}
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "command": ["c"]}]}}}}
    (app,) = containers_of(smp.apply_patch(original, patch, smp.DEPLOYMENT))
    assert app["command"] == ["c"]


@pytest.mark.parametrize("patch", [
    {"spec": {"$patch": "explode"}},
    {"spec": {"template": {"spec": {"containers": [{"$patch": "delete"}]}}}},
    {"spec": {"template": {"spec": {"containers": [{"image": "no-name"}]}}}},
    {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}},
])
def test_a_malformed_patch_is_refused(patch):
    with pytest.raises(smp.PatchError):
        smp.apply_patch(deployment(APP) | {"spec": {**deployment(APP)["spec"],
                                                     "strategy": {}}}, patch, smp.DEPLOYMENT)


def test_json_merge_patch_and_json_patch():
    assert smp.merge_patch({"a": 1, "b": {"c": 2}}, {"b": {"c": None, "d": 3}}) == {
        "a": 1, "b": {"d": 3}}
    doc = {"spec": {"replicas": 1, "list": [1, 2]}}
    ops = [{"op": "replace", "path": "/spec/replicas", "value": 3},
           {"op": "add", "path": "/spec/list/-", "value": 4},
           {"op": "remove", "path": "/spec/list/0"},
           {"op": "test", "path": "/spec/replicas", "value": 3}]
    assert smp.json_patch(doc, ops) == {"spec": {"replicas": 3, "list": [2, 4]}}
    with pytest.raises(smp.PatchError):
        smp.json_patch(doc, [{"op": "test", "path": "/spec/replicas", "value": 9}])
