"""ACL policies: parsed from HCL (as Nomad writes them), YAML or JSON, validated, normalised.

A policy grants, per namespace glob, a coarse ``policy`` (``read``, ``write``, ``deny``) and/or
fine ``capabilities``; and a level (``read``, ``write``, ``deny``) over the cluster-wide areas
``node``, ``pool``, ``queue`` and ``operator``::

    namespace "dev-*" { policy = "write" }
    namespace "prod"  { capabilities = ["read-job", "read-logs"] }
    node     { policy = "read" }
    operator { policy = "deny" }

The normalised form, stored in the replicated state, is plain JSON::

    {"namespace": {"dev-*": ["list-jobs", "read-job", ...]}, "node": "read", ...}
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from federation.errors import ValidationError

# Fine capabilities within a namespace. ``deny`` takes every capability away there.
NAMESPACE_CAPABILITIES = (
    "list-jobs", "read-job", "submit-job", "read-logs", "scale", "alloc-lifecycle",
    "alloc-exec", "deny")
# What the coarse namespace policies expand to (Nomad's split: reading logs is a write-level
# right, since task output often holds more than the job spec does).
NAMESPACE_POLICIES: dict[str, tuple[str, ...]] = {
    "read": ("list-jobs", "read-job"),
    "write": ("list-jobs", "read-job", "submit-job", "read-logs", "scale", "alloc-lifecycle",
              "alloc-exec"),
    "deny": ("deny",),
}
AREAS = ("node", "pool", "queue", "operator")
LEVELS = ("read", "write", "deny")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_GLOB = re.compile(r"^[A-Za-z0-9*?_.-]{1,128}$")
MAX_POLICY_BYTES = 64 << 10


def check_name(name: Any, what: str = "policy") -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValidationError(
            f"a {what} name is 1-128 letters, digits, '-' or '_', starting with a letter or "
            f"digit; got {name!r}", field="name")
    return name


def parse_policy_text(text: str | bytes) -> dict[str, Any]:
    """Parse policy rules written in HCL, JSON or YAML, then validate them."""
    if isinstance(text, bytes):
        if len(text) > MAX_POLICY_BYTES:
            raise ValidationError(f"a policy is at most {MAX_POLICY_BYTES} bytes", field="rules")
        text = text.decode("utf-8", errors="replace")
    if len(text) > MAX_POLICY_BYTES:
        raise ValidationError(f"a policy is at most {MAX_POLICY_BYTES} bytes", field="rules")
    data: Any
    try:
        data = json.loads(text)
    except ValueError:
        data = _parse_hcl_or_yaml(text)
    return normalise(data)


def _parse_hcl_or_yaml(text: str) -> Any:
    import hcl  # pyhcl: HCL1, the syntax of Nomad's ACL policies

    try:
        return hcl.loads(text)
    except Exception as hcl_error:  # noqa: BLE001 - pyhcl raises ValueError and ply errors
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            data = None
        if isinstance(data, dict):
            return data
        raise ValidationError(
            f"the policy is neither HCL, JSON nor YAML: {hcl_error}", field="rules") from None


def normalise(data: Any) -> dict[str, Any]:
    """Validate parsed rules and expand coarse policies into capabilities."""
    if not isinstance(data, dict) or not data:
        raise ValidationError("a policy must hold at least one rule", field="rules")
    unknown = sorted(set(data) - {"namespace", *AREAS})
    if unknown:
        raise ValidationError(
            f"unknown rule {unknown[0]!r} (expected namespace, {', '.join(AREAS)})",
            field=f"rules.{unknown[0]}")
    out: dict[str, Any] = {"namespace": {}}
    namespaces = data.get("namespace") or {}
    if isinstance(namespaces, list):  # HCL written as JSON: a list of single-key blocks
        merged: dict[str, Any] = {}
        for item in namespaces:
            if not isinstance(item, dict):
                raise ValidationError("namespace rules map a glob to a block",
                                      field="rules.namespace")
            merged.update(item)
        namespaces = merged
    if not isinstance(namespaces, dict):
        raise ValidationError("namespace rules map a glob to a block", field="rules.namespace")
    for glob, block in namespaces.items():
        where = f"rules.namespace.{glob}"
        if not isinstance(glob, str) or not _GLOB.match(glob):
            raise ValidationError(
                "a namespace glob is 1-128 characters of letters, digits, . _ - * ?",
                field=where)
        if not isinstance(block, dict) or set(block) - {"policy", "capabilities"}:
            raise ValidationError("a namespace rule holds policy and/or capabilities",
                                  field=where)
        capabilities: set[str] = set()
        coarse = block.get("policy")
        if coarse is not None:
            if coarse not in NAMESPACE_POLICIES:
                raise ValidationError(f"policy must be one of {', '.join(NAMESPACE_POLICIES)}",
                                      field=f"{where}.policy")
            capabilities.update(NAMESPACE_POLICIES[coarse])
        fine = block.get("capabilities", [])
        if not isinstance(fine, list):
            raise ValidationError("capabilities is a list", field=f"{where}.capabilities")
        for i, cap in enumerate(fine):
            if cap not in NAMESPACE_CAPABILITIES:
                raise ValidationError(
                    f"unknown capability {cap!r} (one of {', '.join(NAMESPACE_CAPABILITIES)})",
                    field=f"{where}.capabilities[{i}]")
            capabilities.add(cap)
        if not capabilities:
            raise ValidationError("a namespace rule needs a policy or capabilities", field=where)
        out["namespace"][glob] = sorted(capabilities)
    for area in AREAS:
        if area not in data:
            continue
        block = data[area]
        if isinstance(block, list) and len(block) == 1:
            block = block[0]
        if not isinstance(block, dict) or set(block) != {"policy"} \
                or block["policy"] not in LEVELS:
            raise ValidationError(f"{area} takes {{ policy = read|write|deny }}",
                                  field=f"rules.{area}")
        out[area] = block["policy"]
    return out


def check_normalised(rules: Any) -> dict[str, Any]:
    """Validate rules already in the normalised form (what a state machine command carries)."""
    if not isinstance(rules, dict) or not isinstance(rules.get("namespace", {}), dict):
        raise ValidationError("normalised rules map namespace globs to capabilities",
                              field="rules")
    unknown = sorted(set(rules) - {"namespace", *AREAS})
    if unknown:
        raise ValidationError(f"unknown rule {unknown[0]!r}", field=f"rules.{unknown[0]}")
    for glob, caps in rules.get("namespace", {}).items():
        where = f"rules.namespace.{glob}"
        if not isinstance(glob, str) or not _GLOB.match(glob):
            raise ValidationError("malformed namespace glob", field=where)
        if not isinstance(caps, list) or not caps or any(
                c not in NAMESPACE_CAPABILITIES for c in caps):
            raise ValidationError("a list of known capabilities is required", field=where)
    for area in AREAS:
        if area in rules and rules[area] not in LEVELS:
            raise ValidationError(f"{area} is one of {', '.join(LEVELS)}", field=f"rules.{area}")
    return {"namespace": dict(rules.get("namespace", {})),
            **{a: rules[a] for a in AREAS if a in rules}}
