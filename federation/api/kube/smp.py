"""Strategic merge patch: how ``kubectl apply`` and ``kubectl patch`` change an object. Pure.

A port of apimachinery's ``strategicpatch.StrategicMergeMapPatch`` (the server side: apply a
patch to a live object) for the kinds this endpoint serves. A patch is a JSON object merged
into the original, except that:

- ``null`` deletes a field;
- a list whose field has the ``merge`` strategy is merged element by element, maps matched by
  their merge key (containers by ``name``, ports by ``containerPort``, env by ``name``) and
  scalars by value; other lists are replaced whole;
- directives: ``$patch: replace|delete`` on a map or a list element, ``$retainKeys`` (clear
  the fields not listed), ``$setElementOrder/<field>`` (the order of a merged list), and
  ``$deleteFromPrimitiveList/<field>`` (remove scalars from a merged list).

Which fields merge, and by which key, is the schema below: the patch strategies of the
Kubernetes API types (their ``patchStrategy``/``patchMergeKey`` tags). Neither argument is
modified; a malformed patch raises ``PatchError``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ORDER = "$setElementOrder/"
DELETE_PRIMITIVES = "$deleteFromPrimitiveList/"


class PatchError(ValueError):
    """The patch cannot be applied (a bad directive, a list item without its merge key)."""


class Schema:
    """Patch metadata of one object type: per field, its strategies, merge key and the
    schema of its value (or of its list's items)."""

    __slots__ = ("fields",)

    def __init__(self, fields: Mapping[str, tuple[str, str, Schema | None]] | None = None):
        self.fields = dict(fields or {})

    def lookup(self, name: str) -> tuple[Schema, tuple[str, ...], str]:
        strategy, key, sub = self.fields.get(name, ("", "", None))
        return (sub or EMPTY), tuple(s for s in strategy.split(",") if s), key


EMPTY = Schema()


def _field(strategy: str = "", key: str = "", schema: Schema | None = None
           ) -> tuple[str, str, Schema | None]:
    return (strategy, key, schema)


CONTAINER = Schema({
    "ports": _field("merge", "containerPort"),
    "env": _field("merge", "name"),
    "volumeMounts": _field("merge", "mountPath"),
    "volumeDevices": _field("merge", "devicePath"),
})
POD_SPEC = Schema({
    "containers": _field("merge", "name", CONTAINER),
    "initContainers": _field("merge", "name", CONTAINER),
    "ephemeralContainers": _field("merge", "name", CONTAINER),
    "volumes": _field("merge,retainKeys", "name"),
    "imagePullSecrets": _field("merge", "name"),
    "hostAliases": _field("merge", "ip"),
    "topologySpreadConstraints": _field("merge", "topologyKey"),
    "resourceClaims": _field("merge,retainKeys", "name"),
    "schedulingGates": _field("merge", "name"),
})
OBJECT_META = Schema({
    "finalizers": _field("merge"),
    "ownerReferences": _field("merge", "uid"),
})
POD_TEMPLATE = Schema({"metadata": _field("", "", OBJECT_META), "spec": _field("", "", POD_SPEC)})
JOB_SPEC = Schema({"template": _field("", "", POD_TEMPLATE)})
CONDITIONS = _field("merge", "type")
DEPLOYMENT = Schema({
    "metadata": _field("", "", OBJECT_META),
    "spec": _field("", "", Schema({"template": _field("", "", POD_TEMPLATE),
                                   "strategy": _field("retainKeys")})),
    "status": _field("", "", Schema({"conditions": CONDITIONS})),
})
JOB = Schema({
    "metadata": _field("", "", OBJECT_META),
    "spec": _field("", "", JOB_SPEC),
    "status": _field("", "", Schema({"conditions": CONDITIONS})),
})
CRONJOB = Schema({
    "metadata": _field("", "", OBJECT_META),
    "spec": _field("", "", Schema({"jobTemplate": _field("", "", Schema({
        "metadata": _field("", "", OBJECT_META), "spec": _field("", "", JOB_SPEC)}))})),
})
NAMESPACE = Schema({"metadata": _field("", "", OBJECT_META),
                    "spec": _field("", "", Schema({"finalizers": _field()}))})
POD = Schema({"metadata": _field("", "", OBJECT_META), "spec": _field("", "", POD_SPEC)})


def apply_patch(original: Mapping[str, Any], patch: Mapping[str, Any], schema: Schema
                ) -> dict[str, Any]:
    """The object ``original`` becomes after ``patch``."""
    if not isinstance(patch, Mapping):
        raise PatchError("a strategic merge patch must be a JSON object")
    return _merge_map(copy.deepcopy(dict(original)), copy.deepcopy(dict(patch)), schema)


def _merge_map(original: dict[str, Any] | None, patch: dict[str, Any], schema: Schema
               ) -> dict[str, Any]:
    if DIRECTIVE in patch:
        directive = patch.pop(DIRECTIVE)
        if directive == "replace":
            return patch
        if directive == "delete":
            return {}
        raise PatchError(f"unknown patch directive {directive!r}")
    original = {} if original is None else original
    _retain_keys(original, patch)
    _set_element_orders(original, patch, schema)
    for key, value in list(patch.items()):
        delete_list = key.startswith(DELETE_PRIMITIVES)
        if delete_list:
            key = key[len(DELETE_PRIMITIVES):]
        if value is None:
            original.pop(key, None)
            continue
        if key not in original:
            if not delete_list:
                _assign(original, key, value)
            continue
        current = original[key]
        if type(current) is not type(value) or not isinstance(current, dict | list):
            if not delete_list:
                _assign(original, key, value)
            continue
        sub, strategies, merge_key = schema.lookup(key)
        if isinstance(current, dict):
            original[key] = value if "replace" in strategies else _merge_map(current, value, sub)
        elif "merge" in strategies or delete_list:
            original[key] = _merge_list(current, value, sub, merge_key, delete_list)
        else:
            original[key] = _without_directives(value)
    return original


def _assign(target: dict[str, Any], key: str, value: Any) -> None:
    cleaned = _without_directives(_without_nulls(value))
    if cleaned is _DROP:
        target.pop(key, None)
    else:
        target[key] = cleaned


_DROP = object()


def _without_nulls(value: Any) -> Any:
    """A value new to the object: its nested nulls mean nothing (there is nothing to delete)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _without_directives(value: Any) -> Any:
    if isinstance(value, dict):
        if DIRECTIVE in value:
            return _DROP
        cleaned = {k: _without_directives(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v is not _DROP}
    if isinstance(value, list):
        items = [_without_directives(v) for v in value]
        return [v for v in items if v is not _DROP]
    return value


def _retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    if RETAIN_KEYS not in patch:
        return
    keep = patch.pop(RETAIN_KEYS)
    if not isinstance(keep, list):
        raise PatchError("$retainKeys must be a list of field names")
    for key, value in patch.items():
        if value is None or key.startswith((DELETE_PRIMITIVES, SET_ORDER)):
            continue
        if key not in keep:
            raise PatchError(f"field {key!r} is in the patch but not in $retainKeys")
    for key in list(original):
        if key not in keep:
            del original[key]


def _set_element_orders(original: dict[str, Any], patch: dict[str, Any], schema: Schema) -> None:
    for directive in [k for k in patch if k.startswith(SET_ORDER)]:
        order = patch.pop(directive)
        if not isinstance(order, list):
            raise PatchError(f"{directive} must be a list")
        key = directive[len(SET_ORDER):]
        sub, strategies, merge_key = schema.lookup(key)
        in_original, in_patch = key in original, key in patch
        current = original.get(key) if in_original else None
        patched = patch.get(key) if in_patch else None
        for value in (current, patched):
            if value is not None and not isinstance(value, list):
                raise PatchError(f"{key} must be a list to be ordered by {directive}")
        if in_original and not in_patch:
            merged = current
        elif in_patch and not in_original:
            merged = _without_directives(patched)
        elif in_original and in_patch:
            merged = (_merge_list(current or [], patched or [], sub, merge_key, False)
                      if "merge" in strategies else _without_directives(patched))
        else:
            continue
        assert isinstance(merged, list)  # for the type checker: both branches give lists
        if merge_key:
            listed = {_key_of(item, merge_key) for item in order}
            ordered = [i for i in merged if _key_of(i, merge_key) in listed]
            server_only = [i for i in merged if _key_of(i, merge_key) not in listed]
        else:
            ordered = [i for i in merged if i in order]
            server_only = [i for i in merged if i not in order]
        original[key] = _normalize_order(ordered, server_only, order, current or [], merge_key)
        patch.pop(key, None)


def _key_of(item: Any, merge_key: str) -> Any:
    if not merge_key:
        return _hashable(item)
    if not isinstance(item, dict) or merge_key not in item:
        raise PatchError(f"a list item has no merge key {merge_key!r}: {item!r}")
    return _hashable(item[merge_key])


def _hashable(value: Any) -> Any:
    return repr(value) if isinstance(value, dict | list) else value


def _index(items: list[Any], item: Any, merge_key: str) -> int:
    wanted = _key_of(item, merge_key)
    for i, candidate in enumerate(items):
        try:
            if _key_of(candidate, merge_key) == wanted:
                return i
        except PatchError:
            continue
    return -1


def _sort_by(items: list[Any], order: list[Any], merge_key: str) -> list[Any]:
    deletes = [i for i in items if isinstance(i, dict) and i.get(DIRECTIVE) == "delete"]
    kept = [i for i in items if not (isinstance(i, dict) and i.get(DIRECTIVE) == "delete")]
    # Go's sort.SliceStable with its "not found sorts first" comparator: items absent from the
    # order keep their place relative to each other ahead of the ordered ones.
    absent = [i for i in kept if _index(order, i, merge_key) < 0]
    present = sorted((i for i in kept if _index(order, i, merge_key) >= 0),
                     key=lambda i: _index(order, i, merge_key))
    return absent + present + deletes


def _normalize_order(patch_items: list[Any], server_only: list[Any], patch_order: list[Any],
                     server_order: list[Any], merge_key: str) -> list[Any]:
    """apimachinery's normalizeElementOrder: patch items in the patch's order, server-only
    items slotted in by their place in the live list."""
    right = _sort_by(patch_items, patch_order, merge_key)
    left = _sort_by(server_only, server_order, merge_key)
    merged, i, j = [], 0, 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            merged.append(right[j])
            j += 1
        elif j >= len(right):
            merged.append(left[i])
            i += 1
        else:
            li, ri = _index(server_order, left[i], merge_key), _index(server_order, right[j],
                                                                      merge_key)
            if li >= 0 and ri >= 0 and li < ri:
                merged.append(left[i])
                i += 1
            else:
                merged.append(right[j])
                j += 1
    return merged


def _merge_list(original: list[Any], patch: list[Any], schema: Schema, merge_key: str,
                delete_list: bool) -> list[Any]:
    if not original and not patch:
        return original
    maps = any(isinstance(v, dict) for v in (*original, *patch))
    if not maps:
        if delete_list:
            return [v for v in original if v not in patch]
        merged: list[Any] = []
        for value in [*original, *patch]:
            if value not in merged:
                merged.append(value)
    else:
        if not merge_key:
            raise PatchError("cannot merge a list of objects without a merge key")
        original, patch = _special_elements(original, patch, merge_key)
        merged = list(original)
        for item in patch:
            if not isinstance(item, dict):
                raise PatchError("a merged list must hold objects only")
            at = _index(merged, item, merge_key)
            if at >= 0:
                merged[at] = _merge_map(merged[at], item, schema)
            else:
                merged.append(_without_directives(item))
    if maps:
        keys = {_key_of(i, merge_key) for i in patch}
        patch_items = [i for i in merged if _key_of(i, merge_key) in keys]
        server_only = [i for i in merged if _key_of(i, merge_key) not in keys]
    else:
        patch_items = [i for i in merged if i in patch]
        server_only = [i for i in merged if i not in patch]
    return _normalize_order(patch_items, server_only, patch, original,
                            merge_key if maps else "")


def _special_elements(original: list[Any], patch: list[Any], merge_key: str
                      ) -> tuple[list[Any], list[Any]]:
    """Apply the ``$patch`` elements of a merged list: deletions by key, and ``replace``
    (the list becomes the patch's other elements)."""
    plain, replace = [], False
    remaining = list(original)
    for item in patch:
        if not isinstance(item, dict):
            raise PatchError("a merged list must hold objects only")
        directive = item.get(DIRECTIVE)
        if directive is None:
            plain.append(item)
        elif directive == "delete":
            if merge_key not in item:
                raise PatchError(f"a $patch: delete element needs its merge key {merge_key!r}")
            remaining = [o for o in remaining
                         if not (isinstance(o, dict) and o.get(merge_key) == item[merge_key])]
        elif directive == "replace":
            replace = True
        else:
            raise PatchError(f"unknown patch directive {directive!r} in a list")
    if replace:
        return plain, []
    return remaining, plain


def merge_patch(original: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (``application/merge-patch+json``)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(original) if isinstance(original, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(document: Any, operations: Any) -> Any:
    """RFC 6902 JSON patch (``application/json-patch+json``): add, remove, replace, move,
    copy and test."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch is a list of operations")
    doc = copy.deepcopy(document)
    for number, op in enumerate(operations):
        if not isinstance(op, dict) or not isinstance(op.get("path"), str):
            raise PatchError(f"operation {number} needs an 'op' and a 'path'")
        kind = op.get("op")
        if kind == "add":
            doc = _pointer_set(doc, op["path"], copy.deepcopy(op.get("value")), insert=True)
        elif kind == "remove":
            doc, _ = _pointer_remove(doc, op["path"])
        elif kind == "replace":
            _pointer_get(doc, op["path"])
            doc = _pointer_set(doc, op["path"], copy.deepcopy(op.get("value")), insert=False)
        elif kind in ("move", "copy"):
            source = op.get("from")
            if not isinstance(source, str):
                raise PatchError(f"operation {number} ({kind}) needs 'from'")
            value = copy.deepcopy(_pointer_get(doc, source))
            if kind == "move":
                doc, _ = _pointer_remove(doc, source)
            doc = _pointer_set(doc, op["path"], value, insert=True)
        elif kind == "test":
            if _pointer_get(doc, op["path"]) != op.get("value"):
                raise PatchError(f"test operation {number} failed at {op['path']}")
        else:
            raise PatchError(f"unknown JSON patch operation {kind!r}")
    return doc


def _tokens(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"a JSON pointer starts with '/': {pointer!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _step(node: Any, token: str) -> Any:
    if isinstance(node, dict):
        if token not in node:
            raise PatchError(f"no field {token!r}")
        return node[token]
    if isinstance(node, list) and token.isdigit() and int(token) < len(node):
        return node[int(token)]
    raise PatchError(f"cannot step into {token!r}")


def _pointer_get(doc: Any, pointer: str) -> Any:
    node = doc
    for token in _tokens(pointer):
        node = _step(node, token)
    return node


def _pointer_set(doc: Any, pointer: str, value: Any, *, insert: bool) -> Any:
    tokens = _tokens(pointer)
    if not tokens:
        return value
    parent = _pointer_get(doc, "/" + "/".join(
        t.replace("~", "~0").replace("/", "~1") for t in tokens[:-1])) if tokens[:-1] else doc
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent) and (insert or int(last) < len(parent)):
            if insert:
                parent.insert(int(last), value)
            else:
                parent[int(last)] = value
        else:
            raise PatchError(f"bad list index {last!r}")
    else:
        raise PatchError(f"cannot set {pointer!r}")
    return doc


def _pointer_remove(doc: Any, pointer: str) -> tuple[Any, Any]:
    tokens = _tokens(pointer)
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = doc
    for token in tokens[:-1]:
        parent = _step(parent, token)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return doc, parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return doc, parent.pop(int(last))
    raise PatchError(f"nothing to remove at {pointer!r}")
