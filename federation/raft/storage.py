"""Durable, checksummed Raft storage, in place of pysyncobj's ``FileJournal`` and the file case
of its ``Serializer``.

pysyncobj's journal is an mmap'd file that is never synced, its term/vote file is replaced
without fsync, its snapshots are renamed into place without fsync, and its records carry no
checksum: after a power cut the vote could be forgotten (two votes in one term), and a
record cut short or with one changed byte was read back as whatever it held.

The journal here (``<data-dir>/raft.journal``)::

    header:  b"FEDERATION-RAFT-JOURNAL\\0" (24 bytes) + format version (uint32 LE, 2)
    record:  body length (uint32 LE) + CRC-32 of (length bytes + body) (uint32 LE)
             + body = index (uint64 LE) + term (uint64 LE) + command bytes

Records are written with ``pwrite`` as pysyncobj adds them and made durable by ``sync()``
(one ``fdatasync`` for everything added since the last one), which ``RaftNode`` calls before
any message leaves the node and once per Raft tick: a group-committed batch costs one fsync.
Term, vote and commit index live in ``raft.journal.state`` (JSON with its own CRC), replaced
atomically (temp file, fsync, rename, directory fsync) every time the term or vote changes,
before pysyncobj sends the vote or request that reflects them. Compaction rewrites the
journal the same atomic way. ``fsync=False`` keeps every write and the atomic renames but
skips the fsyncs: a process crash loses nothing, a power cut may.

Snapshots (``<data-dir>/raft.snapshot``) are gzip'd pickles, as pysyncobj writes them, but
pickled with protocol 5 and compressed at gzip level 1: against pysyncobj's protocol 2 at
level 9 that is about a sixth of the CPU to write and half the size on disk, and any reader
of pickles (an older server included) loads them. A snapshot is loaded with the cyclic garbage
collector paused, and what it loaded is then frozen (``gc.freeze``): loading allocates millions
of objects that all survive, and collections traversing all of them, while loading and again
as they were promoted afterwards, made a restart several times slower.

On open, a damaged tail (a record cut short, a bad checksum in the last record, zeros where
the last records should be: anything after which no record checks out) is truncated to the
last good record and logged; the leader re-sends what was dropped. Damage with a good record
after it is refused (``StorageDamaged`` naming the file and byte offset): truncating there
would throw away entries this server acknowledged. A journal in pysyncobj's own format (no
checksums) is converted on first open.
"""

from __future__ import annotations

import contextlib
import gc
import gzip
import json
import logging
import os
import pickle as std_pickle
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pysyncobj.pickle as pysyncobj_pickle
from pysyncobj.journal import Journal
from pysyncobj.serializer import Serializer

from federation.errors import FederationError

log = logging.getLogger("federation.raft")

MAGIC = b"FEDERATION-RAFT-JOURNAL\0"
FORMAT_VERSION = 2
HEADER = MAGIC + struct.pack("<I", FORMAT_VERSION)
_RECORD = struct.Struct("<II")  # body length, crc32(length bytes + body)
_ENTRY = struct.Struct("<QQ")  # index, term
_LENGTH = struct.Struct("<I")
PYSYNCOBJ_MAGIC = b"PYSYNCOBJ"
_PYSYNCOBJ_FIRST_RECORD = 40  # name (24) + version (8) + format (4) + last record offset (4)
SNAPSHOT_PICKLE_PROTOCOL = 5
SNAPSHOT_GZIP_LEVEL = 1

Entry = tuple[bytes, int, int]  # (command, index, term), as pysyncobj reads them


class StorageDamaged(FederationError):
    """A Raft file this server cannot trust: it refuses to start rather than serve from it."""

    code = "storage_damaged"


@dataclass(frozen=True)
class Damage:
    offset: int
    dropped_bytes: int
    reason: str


@dataclass(frozen=True)
class Scan:
    entries: list[Entry]
    offsets: list[int]
    end: int  # offset just past the last good record
    damage: Damage | None  # a damaged tail, to be truncated at ``end``


def encode_record(command: bytes, index: int, term: int) -> bytes:
    body = _ENTRY.pack(index, term) + bytes(command)
    length = _LENGTH.pack(len(body))
    return length + _LENGTH.pack(zlib.crc32(body, zlib.crc32(length))) + body


def _valid_record_at(data: bytes, pos: int) -> bool:
    if pos + _RECORD.size + _ENTRY.size > len(data):
        return False
    length, crc = _RECORD.unpack_from(data, pos)
    end = pos + _RECORD.size + length
    if length < _ENTRY.size or end > len(data):
        return False
    return zlib.crc32(data[pos + _RECORD.size:end], zlib.crc32(data[pos:pos + 4])) == crc


def _first_valid_record_after(data: bytes, pos: int) -> int | None:
    """Offset of the first byte position after ``pos`` where a whole record checks out.
    Only run on damage; most positions fail at the length test."""
    for candidate in range(pos + 1, len(data) - _RECORD.size - _ENTRY.size + 1):
        if _valid_record_at(data, candidate):
            return candidate
    return None


def scan_records(data: bytes, path: str) -> Scan:
    """Read every record after the header. Pure: ``path`` only names the file in errors.

    A bad record is a damaged *tail* when no record that checks out follows it anywhere in
    the file (a torn last write, a cut, zeros, a changed byte in the last record): it is
    truncated there. If a good record follows, the damage is in the middle: truncating would
    drop entries this server acknowledged, so ``StorageDamaged`` names the offset."""
    entries: list[Entry] = []
    offsets: list[int] = []
    pos = len(HEADER)
    size = len(data)
    while pos < size:
        if size - pos < _RECORD.size:
            reason = "a record header cut short"
        else:
            length, crc = _RECORD.unpack_from(data, pos)
            end = pos + _RECORD.size + length
            if length < _ENTRY.size:
                reason = f"an impossible record length ({length})"
            elif end > size:
                reason = f"a record cut short ({size - pos} of {end - pos} bytes)"
            elif not _valid_record_at(data, pos):
                reason = "a record whose checksum does not match"
            else:
                index, term = _ENTRY.unpack_from(data, pos + _RECORD.size)
                if entries and index != entries[-1][1] + 1:
                    # A record that checks out but is out of place was never a torn write.
                    raise StorageDamaged(
                        f"the Raft journal {path} is damaged at byte offset {pos} (index "
                        f"{index} after index {entries[-1][1]}): refusing to start")
                entries.append((data[pos + _RECORD.size + _ENTRY.size:end], index, term))
                offsets.append(pos)
                pos = end
                continue
        good = _first_valid_record_after(data, pos)
        if good is not None:
            raise StorageDamaged(
                f"the Raft journal {path} is damaged at byte offset {pos} ({reason}) and good "
                f"records follow (from byte offset {good}): refusing to start. Restore the "
                "data directory from a backup, or remove it to rejoin as an empty member that "
                "copies everything from the leader")
        return Scan(entries, offsets, pos, Damage(pos, size - pos, reason))
    return Scan(entries, offsets, pos, None)


def parse_pysyncobj_journal(data: bytes, path: str) -> list[Entry]:
    """Entries of a journal written by pysyncobj's own ``FileJournal`` (no checksums)."""
    (last,) = _LENGTH.unpack_from(data, _PYSYNCOBJ_FIRST_RECORD - 4)
    entries: list[Entry] = []
    pos = _PYSYNCOBJ_FIRST_RECORD
    while pos < last:
        (length,) = _LENGTH.unpack_from(data, pos)
        end = pos + 4 + length
        if length < _ENTRY.size or end + 4 > len(data) or \
                _LENGTH.unpack_from(data, end)[0] != length:
            raise StorageDamaged(
                f"the pysyncobj-format Raft journal {path} is damaged at byte offset {pos}: "
                "refusing to convert it")
        index, term = _ENTRY.unpack_from(data, pos + 4)
        entries.append((bytes(data[pos + 4 + _ENTRY.size:end]), index, term))
        pos = end + 4
    return entries


def fsync_dir(path: str) -> None:
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, chunks: Iterator[bytes] | list[bytes], *, fsync: bool) -> None:
    """Replace ``path`` so that a crash leaves either the old or the new content."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        for chunk in chunks:
            f.write(chunk)
        f.flush()
        if fsync:
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if fsync:
        fsync_dir(path)


class DurableJournal(Journal):
    """pysyncobj's journal interface over the checksummed file format described above."""

    def __init__(self, path: str, *, fsync: bool = True) -> None:
        self._path = path
        self._fsync = fsync
        self._state_path = path + ".state"
        self._fd: int | None = None
        self._state = self._load_state()
        self._state_saved = True
        self._dirty = False
        if not os.path.exists(path):
            atomic_write(path, [HEADER], fsync=fsync)
        with open(path, "rb") as f:
            data = f.read()
        if data.startswith(PYSYNCOBJ_MAGIC):
            entries = parse_pysyncobj_journal(data, path)
            self._rewrite(entries)
            log.warning("converted the Raft journal %s from pysyncobj's format (%d entries, "
                        "no checksums) to the checksummed format", path, len(entries))
        else:
            if not data.startswith(HEADER):
                raise StorageDamaged(
                    f"{path} is not a federation Raft journal (unknown header): refusing "
                    "to start")
            scan = scan_records(data, path)
            self._entries, self._offsets, self._end = scan.entries, scan.offsets, scan.end
            self._fd = os.open(path, os.O_RDWR)
            if scan.damage is not None:
                self._truncate_damaged_tail(scan)
        last = self._entries[-1][1] if self._entries else 0
        if self._entries and self.getRaftCommitIndex() > last:
            self._state["commit_index"] = last
            self._state_saved = False

    # -- loading ---------------------------------------------------------------------------
    def _load_state(self) -> dict[str, Any]:
        try:
            with open(self._state_path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return self._load_pysyncobj_meta()
        try:
            document = json.loads(raw)
            state = document["state"]
            crc = zlib.crc32(json.dumps(state, sort_keys=True).encode())
            if document["crc"] != crc:
                raise ValueError("checksum mismatch")
            return {"term": int(state["term"]), "voted_for": state["voted_for"],
                    "commit_index": int(state["commit_index"])}
        except (ValueError, KeyError, TypeError) as exc:
            raise StorageDamaged(
                f"the Raft term/vote file {self._state_path} is damaged ({exc}): refusing to "
                "start (a forgotten vote could elect two leaders in one term)") from None

    def _load_pysyncobj_meta(self) -> dict[str, Any]:
        state: dict[str, Any] = {"term": 0, "voted_for": None, "commit_index": 1}
        try:
            with open(self._path + ".meta", "rb") as f:
                meta = pysyncobj_pickle.loads(f.read())
        except (FileNotFoundError, std_pickle.UnpicklingError, EOFError):
            return state
        state["term"] = int(meta.get("currentTerm", 0))
        state["voted_for"] = meta.get("votedForNodeId")
        state["commit_index"] = int(meta.get("raftCommitIndex", 1))
        return state

    def _truncate_damaged_tail(self, scan: Scan) -> None:
        damage = scan.damage
        assert damage is not None  # noqa: S101 - guarded by the caller
        last = scan.entries[-1][1] if scan.entries else None
        log.warning(
            "the Raft journal %s has a damaged tail at byte offset %d (%s): dropped %d bytes; "
            "the last good record is index %s; the leader will send the rest again",
            self._path, damage.offset, damage.reason, damage.dropped_bytes, last)
        os.ftruncate(self._handle(), scan.end)
        if self._fsync:
            os.fsync(self._handle())

    def _rewrite(self, entries: list[Entry]) -> None:
        """Replace the whole file atomically with ``entries``; reopen it."""
        records = [encode_record(*entry) for entry in entries]
        atomic_write(self._path, [HEADER, *records], fsync=self._fsync)
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(self._path, os.O_RDWR)
        self._entries = list(entries)
        self._offsets = []
        pos = len(HEADER)
        for record in records:
            self._offsets.append(pos)
            pos += len(record)
        self._end = pos
        self._dirty = False

    def _handle(self) -> int:
        if self._fd is None:
            raise RuntimeError(f"the Raft journal {self._path} is closed")
        return self._fd

    # -- durability ------------------------------------------------------------------------
    def sync(self) -> None:
        """Make every record added so far durable (one fdatasync for all of them)."""
        if self._dirty and self._fd is not None:
            if self._fsync:
                os.fdatasync(self._fd)
            self._dirty = False

    def _save_state(self) -> None:
        state = dict(self._state)
        document = {"state": state,
                    "crc": zlib.crc32(json.dumps(state, sort_keys=True).encode())}
        atomic_write(self._state_path, [json.dumps(document).encode()], fsync=self._fsync)
        self._state_saved = True

    # -- pysyncobj's Journal interface -----------------------------------------------------
    def add(self, command: bytes, idx: int, term: int) -> None:
        record = encode_record(command, idx, term)
        os.pwrite(self._handle(), record, self._end)
        self._entries.append((command, idx, term))
        self._offsets.append(self._end)
        self._end += len(record)
        self._dirty = True

    def clear(self) -> None:
        self._entries = []
        self._offsets = []
        self._end = len(HEADER)
        os.ftruncate(self._handle(), self._end)
        self._dirty = True

    def deleteEntriesFrom(self, entryFrom: int) -> None:  # noqa: N802, N803
        if entryFrom >= len(self._entries):
            return
        self._end = self._offsets[entryFrom]
        del self._entries[entryFrom:]
        del self._offsets[entryFrom:]
        os.ftruncate(self._handle(), self._end)
        self._dirty = True

    def deleteEntriesTo(self, entryTo: int) -> None:  # noqa: N802, N803
        self.sync()
        self._rewrite(self._entries[entryTo:])

    def __getitem__(self, item: Any) -> Any:
        return self._entries[item]

    def bytes_through(self, index: int) -> int:
        """Bytes of the records up to and including Raft index ``index`` (what a restart
        would replay of them); 0 when the journal starts after it."""
        if not self._entries:
            return 0
        position = index - self._entries[0][1] + 1
        if position <= 0:
            return 0
        end = self._offsets[position] if position < len(self._offsets) else self._end
        return end - len(HEADER)

    def __len__(self) -> int:
        return len(self._entries)

    def _destroy(self) -> None:
        if self._fd is None:
            return
        self.sync()
        if not self._state_saved:
            self._save_state()
        os.close(self._fd)
        self._fd = None

    def setRaftCommitIndex(self, raftCommitIndex: int) -> None:  # noqa: N802, N803
        if self._state["commit_index"] != raftCommitIndex:
            self._state["commit_index"] = raftCommitIndex
            self._state_saved = False

    def getRaftCommitIndex(self) -> int:  # noqa: N802
        return int(self._state["commit_index"])

    def setCurrentTerm(self, term: int, votedForNodeId: Any) -> None:  # noqa: N802, N803
        # Raft: currentTerm and votedFor must be durable before any message reflecting them
        # (a vote request or grant) is sent; pysyncobj sends right after this returns.
        self._state["term"] = term
        self._state["voted_for"] = votedForNodeId
        self._save_state()

    def getCurrentTerm(self) -> int:  # noqa: N802
        return int(self._state["term"])

    def getVotedForNodeId(self) -> Any:  # noqa: N802
        return self._state["voted_for"]

    def onOneSecondTimer(self) -> None:  # noqa: N802
        if not self._state_saved:
            self.sync()  # never record a commit index past what is durable
            self._save_state()


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection in the block (reference counting still frees)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def write_snapshot(path: str, data: Any, *, fsync: bool) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=SNAPSHOT_GZIP_LEVEL) as g:
            std_pickle.dump(data, g, protocol=SNAPSHOT_PICKLE_PROTOCOL)
        f.flush()
        if fsync:
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if fsync:
        fsync_dir(path)


# The snapshot verify_snapshot just decompressed, by path, with the file's identity: the
# load that follows at start uses it instead of decompressing the same file again.
_verified: dict[str, tuple[tuple[int, int, int], bytes]] = {}
_verified_lock = threading.Lock()


def _identity(path: str) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


def read_snapshot(path: str) -> Any:
    """The snapshot's data, unpickled with the garbage collector paused, then frozen."""
    with _verified_lock:
        verified = _verified.pop(path, None)
    if verified is not None and verified[0] == _identity(path):
        raw = verified[1]
    else:
        with open(path, "rb") as f:
            raw = gzip.decompress(f.read())
    with gc_paused():
        data = pysyncobj_pickle.loads(raw)
        # Every object loaded is moved out of the collector's generations: otherwise the
        # next collections traverse all of them, three times over as they are promoted
        # (about half of a restarted server's replay time was spent there). They are still
        # freed by reference counting when the state is replaced: the state machine holds
        # no reference cycles (tests/raft/test_snapshot_cadence.py checks it).
        gc.freeze()
    return data


def verify_snapshot(path: str) -> None:
    """Read the snapshot's whole gzip stream (its CRC-32 and length trailer included);
    ``StorageDamaged`` if it does not check out. pysyncobj would log the failure and go on
    with an empty state and a compacted journal."""
    if not os.path.exists(path):
        return
    try:
        identity = _identity(path)
        with open(path, "rb") as f:
            raw = gzip.decompress(f.read())
        with _verified_lock:
            _verified[path] = (identity, raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise StorageDamaged(
            f"the Raft snapshot {path} is damaged ({exc}): refusing to start. Restore the data "
            "directory from a backup, or remove it to rejoin as an empty member") from None


class DurableSerializer(Serializer):
    """pysyncobj's Serializer, with snapshots written to a temp file, fsynced, renamed and
    the directory fsynced, both when this node compacts and when a leader sends one."""

    def __init__(self, *args: Any, fsync: bool = True) -> None:
        super().__init__(*args)
        self._fsync = fsync
        self._incoming_path: str | None = None

    # pysyncobj keeps the serializer's state in private (name-mangled) attributes; these two
    # are the only way in, and keep the names in one place.
    def _get(self, name: str) -> Any:
        return getattr(self, "_Serializer__" + name)

    def _set(self, name: str, value: Any) -> None:
        setattr(self, "_Serializer__" + name, value)

    def idle(self) -> bool:
        """No snapshot being written (``checkSerializing`` would reap a finished one)."""
        return bool(self._get("pid") == 0)

    def deserialize(self) -> Any:
        path = self._get("fileName")
        if path is None or self._get("deserializer") is not None:
            return super().deserialize()
        started = time.monotonic()
        data = read_snapshot(path)
        log.info("loaded the Raft snapshot %s (%d bytes) in %.2f s", path,
                 os.path.getsize(path), time.monotonic() - started)
        return data

    def serialize(self, data: Any, id: Any) -> None:  # noqa: A002 - pysyncobj's name
        path = self._get("fileName")
        if path is None or self._get("serializer") is not None:
            super().serialize(data, id)
            return
        if self._get("pid") != 0:
            return
        self._set("currentID", id)
        use_fork = self._get("useFork")
        if use_fork:
            pid = os.fork()
            if pid != 0:
                self._set("pid", pid)
                return
        try:
            write_snapshot(path, data, fsync=self._fsync)
        except Exception:  # noqa: BLE001 - reported to pysyncobj as a failed dump
            if use_fork:
                os._exit(1)
            log.exception("writing the Raft snapshot %s failed", path)
            self._set("pid", -2)
            return
        if use_fork:
            os._exit(0)
        self._set("pid", -1)

    def setTransmissionData(self, data: Any) -> bool:  # noqa: N802
        path = self._get("fileName")
        if path is None or data is None:
            return bool(super().setTransmissionData(data))
        chunk, is_first, is_last = data
        tmp = path + ".1.tmp"
        if is_first:
            self._incoming_path = tmp
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        elif self._incoming_path is None:
            return False
        try:
            with open(tmp, "ab") as f:
                f.write(chunk)
                if is_last:
                    f.flush()
                    if self._fsync:
                        os.fsync(f.fileno())
        except OSError:
            log.exception("writing the snapshot received from the leader failed")
            self._incoming_path = None
            return False
        if not is_last:
            return False
        self._incoming_path = None
        os.replace(tmp, path)
        if self._fsync:
            fsync_dir(path)
        return True
