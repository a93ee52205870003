"""streams.statestore: Faust's RocksDB offsets read back, compared with the changelog, reset."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.statestore import OFFSET_KEY, Ahead, ahead_of_changelog, local_offsets, reset_state


def make_db(path: Path, offset: int | None) -> None:
    rocksdict = pytest.importorskip("rocksdict")
    db = rocksdict.Rdict(str(path), options=rocksdict.Options(raw_mode=True))
    db[b"k"] = b"v"
    if offset is not None:
        db[OFFSET_KEY] = str(offset).encode()  # as Faust's Store.set_persisted_offset writes it
    db.close()


def test_local_offsets_reads_each_partitions_persisted_offset(tmp_path: Path) -> None:
    make_db(tmp_path / "sessions-0.db", 41)
    make_db(tmp_path / "sessions-1.db", 7)
    make_db(tmp_path / "customers-0.db", None)  # nothing applied yet
    (tmp_path / "sessions-backups").mkdir()
    assert local_offsets(tmp_path) == {("sessions", 0): 41, ("sessions", 1): 7}


def test_ahead_means_at_or_past_the_changelog_end() -> None:
    changelog = {"sessions": "app-sessions-changelog"}
    ends = {("app-sessions-changelog", 0): 42, ("app-sessions-changelog", 1): 42}
    # Offset 41 applied and the topic ends at 42 (the next offset): consistent.
    assert ahead_of_changelog({("sessions", 0): 41}, changelog, ends) == []
    assert ahead_of_changelog({("sessions", 1): 42}, changelog, ends) == [
        Ahead("app-sessions-changelog", 1, 42, 42)]
    # A topic the broker does not have counts as empty; other apps' tables are not ours.
    assert ahead_of_changelog({("sessions", 2): 0, ("other", 0): 9}, changelog, ends) == [
        Ahead("app-sessions-changelog", 2, 0, 0)]


def test_reset_state_removes_the_table_dir_only(tmp_path: Path) -> None:
    tables = tmp_path / "v1" / "tables"
    tables.mkdir(parents=True)
    (tables / "sessions-0.db").mkdir()
    (tmp_path / "models").mkdir()
    assert reset_state(tables) is True
    assert not tables.exists() and (tmp_path / "models").is_dir() and (tmp_path / "v1").is_dir()
    assert reset_state(tables) is False
