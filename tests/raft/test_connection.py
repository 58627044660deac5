"""Framing on the Raft port: lengths checked before buffering, frames split across reads,
and a connection reset from inside a message callback."""

from __future__ import annotations

import socket
import struct
import zlib
from collections.abc import Callable, Iterator

import pysyncobj.pickle as pickle
import pytest
from pysyncobj.poller import POLL_EVENT_TYPE

from federation.raft.connection import BoundedConnection, FrameLimits


class Poller:
    """pysyncobj's poller interface; events are delivered by hand."""

    def __init__(self) -> None:
        self.callbacks: dict[int, Callable[[int, int], None]] = {}

    def subscribe(self, descr: int, callback: Callable[[int, int], None], mask: int) -> None:
        self.callbacks[descr] = callback

    def unsubscribe(self, descr: int) -> None:
        self.callbacks.pop(descr, None)

    def readable(self, conn: BoundedConnection) -> None:
        fileno = conn.fileno()
        if fileno is not None and fileno in self.callbacks:
            self.callbacks[fileno](fileno, POLL_EVENT_TYPE.READ)


def frame(message: object) -> bytes:
    data = zlib.compress(pickle.dumps(message), 3)
    return struct.pack("i", len(data)) + data


@pytest.fixture
def pair() -> Iterator[tuple[Poller, BoundedConnection, socket.socket, list]]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    poller = Poller()
    conn = BoundedConnection(poller, limits=FrameLimits(max_frame_bytes=1 << 20,
                                                         pre_auth_frame_bytes=1024),
                             timeout=30, send_buffer_size=1 << 16, recv_buffer_size=1 << 16,
                             sock=ours)
    received: list = []
    conn.setOnMessageReceivedCallback(received.append)
    yield poller, conn, theirs, received
    conn.disconnect()
    theirs.close()


def test_a_length_above_the_limit_before_authentication_closes_with_nothing_buffered(
        pair) -> None:
    poller, conn, theirs, received = pair
    closed = []
    conn.setOnDisconnectedCallback(lambda: closed.append(True))
    theirs.sendall(struct.pack("i", 0x7FFFFFFF) + b"\0" * 60_000)
    poller.readable(conn)
    assert closed and received == [] and conn.fileno() is None


def test_a_negative_length_closes_the_connection(pair) -> None:
    poller, conn, theirs, _ = pair
    theirs.sendall(struct.pack("i", -5))
    poller.readable(conn)
    assert conn.fileno() is None


def test_frames_split_across_reads_arrive_whole_and_in_order(pair) -> None:
    poller, conn, theirs, received = pair
    data = frame("hello") + frame({"n": 1}) + frame([1, 2, 3])
    for i in range(0, len(data), 7):
        theirs.sendall(data[i:i + 7])
        poller.readable(conn)
    assert received == ["hello", {"n": 1}, [1, 2, 3]]


def test_after_the_first_frame_large_frames_up_to_the_limit_are_accepted(pair) -> None:
    poller, conn, theirs, received = pair
    big = bytes(range(256)) * 2000  # 512 KB, does not compress much below the 1 KiB limit
    theirs.sendall(frame("key") + frame(big))
    for _ in range(50):
        poller.readable(conn)
        if len(received) == 2:
            break
    assert received == ["key", big]


def test_a_callback_that_reconnects_the_connection_stops_the_dispatch_cleanly(pair) -> None:
    poller, conn, theirs, received = pair
    listener = socket.create_server(("127.0.0.1", 0))

    def reconnect(message: object) -> None:
        # pysyncobj's transport reconnects the same object from its disconnect callback
        received.append(message)
        conn.disconnect()
        conn.connect("127.0.0.1", listener.getsockname()[1])

    conn.setOnMessageReceivedCallback(reconnect)
    theirs.sendall(frame("one") + frame("two"))
    poller.readable(conn)
    assert received == ["one"]
    assert conn.getSendBufferSize() == 0 and conn._scanned == 0
    listener.close()
