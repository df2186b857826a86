"""Atomic outputs: complete or absent, never half-written, with ordinary permissions."""

from __future__ import annotations

import os
import stat

import pytest

from w2vu.io.atomic import atomic_dir, atomic_path, write_text


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "out.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "d") as tmp:
        (tmp / "a").write_text("x")
        raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == []


def test_outputs_get_umask_modes_not_private_ones(tmp_path):
    mask = os.umask(0o022)
    os.umask(mask)
    write_text(tmp_path / "f.txt", "x")
    with atomic_dir(tmp_path / "d") as tmp:
        (tmp / "a").write_text("x")
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o777 & ~mask


def test_replaces_existing_output(tmp_path):
    write_text(tmp_path / "f.txt", "old")
    write_text(tmp_path / "f.txt", "new")
    assert (tmp_path / "f.txt").read_text() == "new"
