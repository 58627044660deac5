"""The checksummed journal: what survives a reopen, how damage is repaired or refused, the
conversion of pysyncobj's own journal format, one fsync per batch, and snapshots."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from pysyncobj.journal import FileJournal

from federation.raft import storage
from federation.raft.storage import (
    HEADER,
    DurableJournal,
    StorageDamaged,
    scan_records,
    verify_snapshot,
    write_snapshot,
)


def journal_with(path: Path, count: int, term: int = 3) -> DurableJournal:
    journal = DurableJournal(str(path))
    for index in range(1, count + 1):
        journal.add(f"command-{index}".encode() * 10, index, term)
    journal.sync()
    return journal


def entries(journal: DurableJournal) -> list[tuple[bytes, int, int]]:
    return [journal[i] for i in range(len(journal))]


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def record_offsets(path: Path) -> list[int]:
    return scan_records(path.read_bytes(), str(path)).offsets


def test_entries_term_and_vote_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "raft.journal"
    journal = journal_with(path, 5)
    journal.setCurrentTerm(7, "127.0.0.1:9000")
    journal.setRaftCommitIndex(4)
    written = entries(journal)
    journal._destroy()
    reopened = DurableJournal(str(path))
    assert entries(reopened) == written
    assert (reopened.getCurrentTerm(), reopened.getVotedForNodeId()) == (7, "127.0.0.1:9000")
    assert reopened.getRaftCommitIndex() == 4


def test_truncation_and_compaction_are_what_a_reopen_sees(tmp_path: Path) -> None:
    path = tmp_path / "raft.journal"
    journal = journal_with(path, 10)
    journal.deleteEntriesFrom(8)  # drop indexes 9 and 10
    journal.deleteEntriesTo(3)  # drop indexes 1..3
    journal.add(b"new", 9, 4)
    journal._destroy()
    reopened = DurableJournal(str(path))
    assert [e[1] for e in entries(reopened)] == [4, 5, 6, 7, 8, 9]
    assert reopened[-1] == (b"new", 9, 4)


def test_a_cut_last_record_is_truncated_and_logged(tmp_path: Path, caplog) -> None:
    path = tmp_path / "raft.journal"
    journal_with(path, 5)._destroy()
    size = path.stat().st_size
    os.truncate(path, size - 7)
    with caplog.at_level(logging.WARNING, logger="federation.raft"):
        reopened = DurableJournal(str(path))
    assert [e[1] for e in entries(reopened)] == [1, 2, 3, 4]
    assert "damaged tail" in caplog.text and "last good record is index 4" in caplog.text
    assert path.stat().st_size == record_offsets(path)[-1] + len(
        storage.encode_record(*reopened[-1]))


def test_a_changed_byte_in_the_last_record_drops_that_record(tmp_path: Path) -> None:
    path = tmp_path / "raft.journal"
    journal_with(path, 5)._destroy()
    flip(path, path.stat().st_size - 3)
    assert [e[1] for e in entries(DurableJournal(str(path)))] == [1, 2, 3, 4]


def test_zeros_where_the_last_records_should_be_are_truncated(tmp_path: Path) -> None:
    path = tmp_path / "raft.journal"
    journal_with(path, 3)._destroy()
    with open(path, "ab") as f:
        f.write(b"\0" * 4096)
    assert [e[1] for e in entries(DurableJournal(str(path)))] == [1, 2, 3]


@pytest.mark.parametrize("where", ["body", "length"])
def test_damage_in_the_middle_is_refused_naming_the_file_and_offset(tmp_path: Path,
                                                                   where: str) -> None:
    path = tmp_path / "raft.journal"
    journal_with(path, 6)._destroy()
    offset = record_offsets(path)[2]
    flip(path, offset + (20 if where == "body" else 1))
    with pytest.raises(StorageDamaged) as refused:
        DurableJournal(str(path))
    assert str(path) in str(refused.value)
    assert f"byte offset {offset}" in str(refused.value)


def test_a_damaged_term_and_vote_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "raft.journal"
    journal = journal_with(path, 1)
    journal.setCurrentTerm(2, "a")
    journal._destroy()
    state = Path(str(path) + ".state")
    state.write_text(state.read_text().replace('"term": 2', '"term": 1'))
    with pytest.raises(StorageDamaged, match="term/vote"):
        DurableJournal(str(path))


def test_a_pysyncobj_journal_is_converted_with_its_term_and_vote(tmp_path: Path) -> None:
    path = tmp_path / "raft.journal"
    old = FileJournal(str(path))  # pysyncobj's own class, as earlier releases wrote it
    for index in range(1, 6):
        old.add(f"old-{index}".encode(), index, 2)
    old.setCurrentTerm(3, "127.0.0.1:9001")
    old.setRaftCommitIndex(5)
    old.onOneSecondTimer()
    old._destroy()
    converted = DurableJournal(str(path))
    assert entries(converted) == [(f"old-{i}".encode(), i, 2) for i in range(1, 6)]
    assert (converted.getCurrentTerm(), converted.getVotedForNodeId()) == (3, "127.0.0.1:9001")
    assert converted.getRaftCommitIndex() == 5
    assert path.read_bytes().startswith(HEADER)


def test_one_fdatasync_covers_every_record_added_since_the_last(tmp_path: Path,
                                                                 monkeypatch) -> None:
    calls = []
    real = os.fdatasync
    monkeypatch.setattr(storage.os, "fdatasync", lambda fd: (calls.append(fd), real(fd)))
    journal = DurableJournal(str(tmp_path / "raft.journal"))
    for index in range(1, 101):
        journal.add(b"x", index, 1)
    journal.sync()
    journal.sync()  # nothing new: no second fsync
    assert len(calls) == 1
    unsynced = DurableJournal(str(tmp_path / "other.journal"), fsync=False)
    unsynced.add(b"x", 1, 1)
    unsynced.sync()
    assert len(calls) == 1


def test_a_term_change_is_fsynced_before_it_returns(tmp_path: Path, monkeypatch) -> None:
    synced = []
    real = os.fsync
    monkeypatch.setattr(storage.os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    journal = DurableJournal(str(tmp_path / "raft.journal"))
    synced.clear()
    journal.setCurrentTerm(4, "me")
    assert len(synced) == 2  # the new file, then its directory (the rename)


def test_snapshots_are_verified_whole(tmp_path: Path) -> None:
    path = tmp_path / "raft.snapshot"
    write_snapshot(str(path), {"state": list(range(10_000))}, fsync=True)
    verify_snapshot(str(path))
    flip(path, path.stat().st_size // 2)
    with pytest.raises(StorageDamaged, match=str(path)):
        verify_snapshot(str(path))


def test_the_load_after_a_verify_uses_that_reading_unless_the_file_changed(
        tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "raft.snapshot"
    write_snapshot(str(path), {"state": "verified"}, fsync=False)
    verify_snapshot(str(path))
    decompressions = []
    real = storage.gzip.decompress
    monkeypatch.setattr(storage.gzip, "decompress",
                        lambda data: decompressions.append(1) or real(data))
    assert storage.read_snapshot(str(path)) == {"state": "verified"}
    assert decompressions == []  # decompressed once, by the verify
    verify_snapshot(str(path))
    write_snapshot(str(path), {"state": "newer"}, fsync=False)  # a leader sent another
    assert storage.read_snapshot(str(path)) == {"state": "newer"}
    assert storage.read_snapshot(str(path)) == {"state": "newer"}  # nothing kept from before
