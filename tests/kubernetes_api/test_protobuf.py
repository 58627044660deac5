"""The protobuf bodies kubectl's typed clients send: a Namespace decodes; anything else,
or a damaged body, is refused with a reason (the route answers 415)."""

from __future__ import annotations

import pytest

from federation.api.kube.protobuf import MAGIC, ProtobufError, decode_object


def field(number: int, value: bytes) -> bytes:
    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)
    return varint(number << 3 | 2) + varint(len(value)) + value


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = field(1, api_version.encode()) + field(2, kind.encode())
    content_type = b"application/vnd.kubernetes.protobuf"
    return MAGIC + field(1, type_meta) + field(2, raw) + field(4, content_type)


def test_a_namespace_with_labels_and_annotations_decodes() -> None:
    meta = (field(1, b"dev") + field(11, field(1, b"team") + field(2, b"a"))
            + field(12, field(1, b"note") + field(2, b"x")))
    obj = decode_object(envelope("v1", "Namespace", field(1, meta)))
    assert obj == {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "dev", "labels": {"team": "a"}, "annotations": {"note": "x"}}}


@pytest.mark.parametrize("body", [
    b"{}",                                                    # no magic
    MAGIC + b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",  # varint overflow
    MAGIC + b"\x0a\x10ab",                                    # length past the end
    envelope("apps/v1", "Deployment", b""),                   # not a kind decoded here
    envelope("v1", "Namespace", field(1, field(1, b"\xff\xfe"))),  # name not UTF-8
])
def test_damaged_or_unsupported_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(ProtobufError):
        decode_object(body)
