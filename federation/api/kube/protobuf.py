"""Reading the protobuf bodies kubectl sends for built-in kinds.

kubectl's typed clients (``kubectl create namespace``) encode the object as Kubernetes
protobuf: the magic ``k8s\\0``, then a ``runtime.Unknown`` (``typeMeta`` 1 with
``apiVersion`` 1 and ``kind`` 2, ``raw`` 2) whose ``raw`` is the object's message. Only the
kinds this server creates from such clients are decoded, and only the fields it keeps
(``metadata``: name 1, namespace 3, labels 11, annotations 12); anything else is a 415 that
tells the caller to send JSON.

The decoder walks the wire format with a bounded number of fields, so a crafted body costs
no more than its length.
"""

from __future__ import annotations

from typing import Any

MAGIC = b"k8s\x00"
MAX_FIELDS = 100_000


class ProtobufError(ValueError):
    """A body that is not the protobuf this module reads."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ProtobufError("truncated or oversized varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """``(field number, value)`` pairs of one message: ints for varints, bytes for
    length-delimited fields (fixed-width fields are skipped)."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        if len(out) >= MAX_FIELDS:
            raise ProtobufError("too many fields")
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError("a field runs past the end of the body")
            out.append((number, data[pos:pos + length]))
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    if pos != len(data):
        raise ProtobufError("a field runs past the end of the body")
    return out


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise ProtobufError("expected a string")
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise ProtobufError("a string is not UTF-8") from None


def _entry(value: int | bytes) -> tuple[str, str]:
    if not isinstance(value, bytes):
        raise ProtobufError("expected a map entry")
    key = val = ""
    for number, item in fields(value):
        if number == 1:
            key = _text(item)
        elif number == 2:
            val = _text(item)
    return key, val


def _metadata(data: bytes) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for number, value in fields(data):
        if number == 1:
            meta["name"] = _text(value)
        elif number == 3:
            meta["namespace"] = _text(value)
        elif number in (11, 12):
            key, val = _entry(value)
            meta.setdefault("labels" if number == 11 else "annotations", {})[key] = val
    return meta


DECODABLE = {("v1", "Namespace")}


def decode_object(body: bytes) -> dict[str, Any]:
    """The object a protobuf body carries, as the JSON-shaped dict the JSON path reads."""
    if not body.startswith(MAGIC):
        raise ProtobufError("the body does not start with the Kubernetes protobuf magic")
    api_version = kind = ""
    raw = b""
    for number, value in fields(body[len(MAGIC):]):
        if number == 1 and isinstance(value, bytes):
            for inner, item in fields(value):
                if inner == 1:
                    api_version = _text(item)
                elif inner == 2:
                    kind = _text(item)
        elif number == 2 and isinstance(value, bytes):
            raw = value
    if (api_version, kind) not in DECODABLE:
        raise ProtobufError(f"{kind or 'this kind'} ({api_version or '?'}) is not accepted as "
                            "protobuf by this server")
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "metadata": {}}
    for number, value in fields(raw):
        if number == 1 and isinstance(value, bytes):
            obj["metadata"] = _metadata(value)
    return obj
