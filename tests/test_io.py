"""Atomic writes: the file is whole or untouched, and permissions follow the usual rules."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from lfkit.io import atomic_write_text


def test_new_file_gets_umask_permissions_and_replaced_file_keeps_its_own(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        new = atomic_write_text(tmp_path / "new.json", "[]")
    finally:
        os.umask(old)
    assert stat.S_IMODE(new.stat().st_mode) == 0o640  # not mkstemp's 0600

    kept = tmp_path / "kept.json"
    kept.write_text("old")
    kept.chmod(0o604)
    atomic_write_text(kept, "new")
    assert kept.read_text() == "new" and stat.S_IMODE(kept.stat().st_mode) == 0o604


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "dataset_info.json"
    target.write_text('{"a": 1}')
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(target, "\udcff", encoding="ascii")
    assert target.read_text() == '{"a": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ["dataset_info.json"]
