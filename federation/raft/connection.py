"""Bounded TCP framing for the Raft port, in place of pysyncobj's ``TcpConnection`` and
``TcpServer``.

pysyncobj frames each message as a 4-byte length then the (encrypted) payload, and its
connection appends every received chunk to an immutable ``bytes`` buffer until the whole
frame has arrived, whatever length the prefix claims. Anyone who can reach the port (no
secret needed) could send a length of 0x7fffffff and then stream data: the Raft thread spent
its time re-copying an ever-growing buffer (quadratic) and the leader lost its followers. Its
server also bound ``0.0.0.0`` for any IPv4 address.

These classes speak the same wire format (so they interoperate with pysyncobj peers) and
keep pysyncobj's connection interface, with three differences:

* a frame's length is checked as soon as its 4-byte prefix has arrived; a length above the
  limit closes the connection before any of the frame is buffered. Until the peer has proved
  it knows the cluster secret (its first frame decrypted), the limit is small
  (``pre_auth_frame_bytes``) and at most that much is buffered at all;
* buffers are ``bytearray``s consumed from the front, so receiving or sending a frame costs
  time linear in its size;
* the server binds exactly the host it is given.
"""

from __future__ import annotations

import errno
import socket
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pysyncobj.pickle as pickle
from pysyncobj.poller import POLL_EVENT_TYPE
from pysyncobj.tcp_connection import CONNECTION_STATE, _getAddrType, set_keepalive

_LENGTH = struct.Struct("i")  # pysyncobj's native-order signed int: kept for compatibility
_RETRY = (errno.EAGAIN, errno.EWOULDBLOCK)
# Read at most this much in one poll event, so one busy peer cannot hold the Raft thread.
_READ_PER_EVENT = 1 << 20
# Call ``after_read`` (which sends the replies held back until the journal is synced) at
# least every this many frames, so a long read does not delay every acknowledgement in it.
_FRAMES_PER_FLUSH = 64


@dataclass(frozen=True)
class FrameLimits:
    """Sizes for one connection. ``max_frame_bytes`` bounds an authenticated peer's frame
    (an append-entries message: entries up to the batch size, compressed, then base64-grown by
    the encryption); ``pre_auth_frame_bytes`` bounds everything before authentication (the
    handshake frames are about 200 bytes)."""

    max_frame_bytes: int = 192 << 20
    pre_auth_frame_bytes: int = 64 << 10


class FrameTooLarge(Exception):
    pass


class BoundedConnection:
    """One framed, optionally encrypted connection driven by pysyncobj's poller.

    The attributes ``sendRandKey``, ``recvRandKey``, ``recvLastTimestamp`` and ``encryptor``
    and the camel-case methods are the interface pysyncobj's transport uses."""

    def __init__(self, poller: Any, *, limits: FrameLimits, timeout: float,
                 send_buffer_size: int, recv_buffer_size: int,
                 keepalive: tuple[int, int, int] | None = None,
                 sock: socket.socket | None = None,
                 after_read: Callable[[], None] | None = None) -> None:
        self.sendRandKey: Any = None
        self.recvRandKey: Any = None
        self.recvLastTimestamp = 0
        self.encryptor: Any = None
        self.authenticated = False
        self.opened_at = time.monotonic()
        self._poller = poller
        self._limits = limits
        self._timeout = timeout
        self._send_buffer_size = send_buffer_size
        self._recv_buffer_size = recv_buffer_size
        self._keepalive = keepalive
        self._read = bytearray()
        self._scanned = 0  # offset of the first frame whose length prefix is not checked yet
        self._frames = 0  # frames whose length prefix was checked on this connection
        self._write = bytearray()
        self._last_read = time.monotonic()
        self._on_message: Callable[[Any], None] | None = None
        self._on_connected: Callable[[], None] | None = None
        self._on_disconnected: Callable[[], None] | None = None
        self._after_read = after_read
        self._socket = sock
        self._fileno: int | None = None
        self._state = CONNECTION_STATE.DISCONNECTED
        if sock is not None:
            self._fileno = sock.fileno()
            self._state = CONNECTION_STATE.CONNECTED
            self._set_keepalive()
            poller.subscribe(self._fileno, self._process, POLL_EVENT_TYPE.READ
                             | POLL_EVENT_TYPE.WRITE | POLL_EVENT_TYPE.ERROR)

    # -- pysyncobj's connection interface ------------------------------------------------
    def setOnConnectedCallback(self, callback: Callable[[], None] | None) -> None:  # noqa: N802
        self._on_connected = callback

    def setOnMessageReceivedCallback(self, callback: Callable[[Any], None] | None) -> None:  # noqa: N802
        self._on_message = callback

    def setOnDisconnectedCallback(self, callback: Callable[[], None] | None) -> None:  # noqa: N802
        self._on_disconnected = callback

    @property
    def state(self) -> int:
        return self._state

    def fileno(self) -> int | None:
        return self._fileno

    def getSendBufferSize(self) -> int:  # noqa: N802
        return len(self._write)

    def connect(self, host: str | None, port: int) -> bool:
        if host is None:
            return False
        self._state = CONNECTION_STATE.DISCONNECTED
        self._fileno = None
        self._socket = socket.socket(_getAddrType(host), socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._send_buffer_size)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._recv_buffer_size)
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._set_keepalive()
        self._socket.setblocking(False)
        self._reset_buffers()
        self.authenticated = False
        self.opened_at = self._last_read = time.monotonic()
        try:
            self._socket.connect((host, port))
        except OSError as exc:
            if exc.errno not in (errno.EINPROGRESS, *_RETRY):
                return False
        self._fileno = self._socket.fileno()
        self._state = CONNECTION_STATE.CONNECTING
        self._poller.subscribe(self._fileno, self._process, POLL_EVENT_TYPE.READ
                               | POLL_EVENT_TYPE.WRITE | POLL_EVENT_TYPE.ERROR)
        return True

    def send(self, message: Any) -> None:
        if self.sendRandKey:
            message = (self.sendRandKey, message)
        data = zlib.compress(pickle.dumps(message), 3)
        if self.encryptor:
            data = self.encryptor.encrypt_at_time(data, int(time.monotonic()))
        self._write += _LENGTH.pack(len(data))
        self._write += data
        self._flush()

    def disconnect(self) -> None:
        notify = self._on_disconnected is not None and \
            self._state != CONNECTION_STATE.DISCONNECTED
        self.sendRandKey = None
        self.recvRandKey = None
        self.recvLastTimestamp = 0
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._fileno is not None:
            self._poller.unsubscribe(self._fileno)
            self._fileno = None
        self._reset_buffers()
        self._state = CONNECTION_STATE.DISCONNECTED
        if notify and self._on_disconnected is not None:
            self._on_disconnected()

    # -- internals -----------------------------------------------------------------------
    def _set_keepalive(self) -> None:
        if self._socket is not None and self._keepalive is not None:
            set_keepalive(self._socket, *self._keepalive)

    def _reset_buffers(self) -> None:
        self._read = bytearray()
        self._write = bytearray()
        self._scanned = 0
        self._frames = 0

    def _process(self, descr: int, event: int) -> None:
        if descr != self._fileno:
            self._poller.unsubscribe(descr)
            return
        if event & POLL_EVENT_TYPE.ERROR:
            self.disconnect()
            return
        # Silent for the timeout: the peer is gone. Not when there is something to read: a
        # process that was not scheduled for a while finds its peers' messages waiting.
        if not event & POLL_EVENT_TYPE.READ and time.monotonic() - self._last_read > self._timeout:
            self.disconnect()
            return
        sock = self._socket
        if sock is None:
            return
        if event & (POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.WRITE):
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self.disconnect()
                return
            if self._state == CONNECTION_STATE.CONNECTING:
                if self._on_connected is not None:
                    self._on_connected()
                if self._state == CONNECTION_STATE.DISCONNECTED:
                    return
                self._state = CONNECTION_STATE.CONNECTED
                self._last_read = time.monotonic()
                return
        if event & POLL_EVENT_TYPE.WRITE:
            self._flush()
            if self._state == CONNECTION_STATE.DISCONNECTED:
                return
            mask = POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.ERROR
            if self._write:
                mask |= POLL_EVENT_TYPE.WRITE
            self._poller.subscribe(descr, self._process, mask)
        if event & POLL_EVENT_TYPE.READ:
            self._receive()
            self._dispatch()
            if self._after_read is not None:
                self._after_read()

    def _flush(self) -> None:
        if self._state == CONNECTION_STATE.DISCONNECTED or self._socket is None:
            return
        while self._write:
            try:
                sent = self._socket.send(self._write)
            except OSError as exc:
                if exc.errno not in _RETRY:
                    self.disconnect()
                return
            if sent <= 0:
                return
            del self._write[:sent]  # bytearray drops its head in place: no copy of the rest

    def _receive(self) -> None:
        """Read what is available, checking each frame's length as soon as it is known."""
        received = 0
        while received < _READ_PER_EVENT and self._socket is not None:
            # Before authentication nothing beyond the small first frame is worth holding.
            if not self.authenticated and len(self._read) > self._limits.pre_auth_frame_bytes:
                return
            try:
                chunk = self._socket.recv(self._recv_buffer_size)
            except OSError as exc:
                if exc.errno not in _RETRY:
                    self.disconnect()
                return
            if not chunk:
                self.disconnect()
                return
            received += len(chunk)
            self._last_read = time.monotonic()
            self._read += chunk
            try:
                self._check_lengths()
            except FrameTooLarge:
                self.disconnect()
                return

    def _check_lengths(self) -> None:
        buffer = self._read
        while self._scanned + _LENGTH.size <= len(buffer):
            (length,) = _LENGTH.unpack_from(buffer, self._scanned)
            limit = (self._limits.max_frame_bytes if self.authenticated or self._frames > 0
                     else self._limits.pre_auth_frame_bytes)
            if length < 0 or length > limit:
                raise FrameTooLarge(length)
            end = self._scanned + _LENGTH.size + length
            if end > len(buffer):
                return
            self._scanned = end
            self._frames += 1

    def _dispatch(self) -> None:
        consumed = 0
        buffer = self._read
        # A callback may disconnect, and pysyncobj may then reconnect this same object at
        # once (fresh buffers): stop as soon as the buffer is no longer the one being read.
        handled = 0
        while consumed < self._scanned and self._read is buffer:
            if handled and handled % _FRAMES_PER_FLUSH == 0 and self._after_read is not None:
                self._after_read()
                if self._read is not buffer:
                    return
            handled += 1
            (length,) = _LENGTH.unpack_from(buffer, consumed)
            start = consumed + _LENGTH.size
            data = bytes(buffer[start:start + length])
            consumed = start + length
            message = self._decode(data)
            if self._read is not buffer or self._state == CONNECTION_STATE.DISCONNECTED:
                return
            if self._on_message is not None:
                self._on_message(message)
        if self._read is not buffer:
            return
        del buffer[:consumed]
        self._scanned -= consumed

    def _decode(self, data: bytes) -> Any:
        try:
            if self.encryptor:
                stamp = self.encryptor.extract_timestamp(data)
                if stamp < self.recvLastTimestamp:
                    raise ValueError("frame timestamp went backwards")
                self.recvLastTimestamp = stamp
                data = self.encryptor.decrypt(data)
            message = pickle.loads(zlib.decompress(data))
            if self.recvRandKey:
                key, message = message
                if key != self.recvRandKey:
                    raise ValueError("wrong connection key")
        except Exception:  # noqa: BLE001 - any undecodable frame means a foreign peer
            self.disconnect()
            return None
        self.authenticated = True
        return message


class BoundedServer:
    """The listening socket: binds exactly ``host``, hands each accepted socket over as a
    ``BoundedConnection``."""

    def __init__(self, poller: Any, host: str, port: int,
                 on_new_connection: Callable[[BoundedConnection], None],
                 make_connection: Callable[[socket.socket], BoundedConnection],
                 backlog: int = 64) -> None:
        self._poller = poller
        self._host = host
        self._port = int(port)
        self._on_new_connection = on_new_connection
        self._make_connection = make_connection
        self._backlog = backlog
        self._socket: socket.socket | None = None
        self._fileno: int | None = None

    @property
    def address(self) -> tuple[str, int] | None:
        return self._socket.getsockname()[:2] if self._socket is not None else None

    def bind(self) -> None:
        sock = socket.socket(_getAddrType(self._host), socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setblocking(False)
            sock.bind((self._host, self._port))
            sock.listen(self._backlog)
        except OSError:
            sock.close()
            raise
        self._socket = sock
        self._fileno = sock.fileno()
        self._poller.subscribe(self._fileno, self._on_event,
                               POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.ERROR)

    def unbind(self) -> None:
        if self._fileno is not None:
            self._poller.unsubscribe(self._fileno)
            self._fileno = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _on_event(self, descr: int, event: int) -> None:
        if event & POLL_EVENT_TYPE.ERROR:
            self.unbind()
            return
        if not event & POLL_EVENT_TYPE.READ or self._socket is None:
            return
        try:
            sock, _addr = self._socket.accept()
        except OSError as exc:
            if exc.errno not in (*_RETRY, errno.ECONNABORTED, errno.EMFILE, errno.ENFILE):
                self.unbind()
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        self._on_new_connection(self._make_connection(sock))
