"""Atomic writes: a directory as target, temp names never leaking, stale temp files cleaned up."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import random_gaussians

from splatnet.errors import SplatnetError
from splatnet.io import atomic
from splatnet.io.atomic import atomic_directory, atomic_write_bytes


@pytest.mark.parametrize("fmt", ["ply", "splat"])
def test_save_onto_directory_names_target_not_temp(tmp_path: Path, fmt: str):
    target = tmp_path / f"out.{fmt}"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    g = random_gaussians(5, sh_degree=0)
    with pytest.raises(SplatnetError) as err:
        g.save_ply(target) if fmt == "ply" else g.save_splat(target)
    msg = str(err.value)
    assert msg.startswith(str(target)) and "is a directory" in msg
    assert ".tmp" not in msg and "\n" not in msg
    assert isinstance(err.value, IsADirectoryError)  # still an OSError for callers that catch it
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]
    assert (target / "keep.txt").read_text() == "mine"


def test_unwritable_folder_error_has_no_temp_name(tmp_path: Path, monkeypatch):
    # Root writes anywhere, so the refusal of the OS is simulated where it would happen.
    def refuse(prefix="", suffix="", dir=None):
        raise PermissionError(13, "Permission denied", os.path.join(dir, prefix + "abcd1234" + suffix))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)
    with pytest.raises(PermissionError) as err:
        atomic_write_bytes(tmp_path / "x.bin", b"data")
    msg = str(err.value)
    assert msg.startswith(str(tmp_path / "x.bin")) and "Permission denied" in msg
    assert ".tmp" not in msg and "abcd1234" not in msg
    assert list(tmp_path.iterdir()) == []


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _make(path: Path, is_dir: bool, age_s: float) -> Path:
    if is_dir:
        path.mkdir()
        (path / "partial.png").write_bytes(b"\0" * 100)
    else:
        path.write_bytes(b"\0" * 1000)
    t = time.time() - age_s
    os.utime(path, (t, t))
    return path


def test_stale_temp_files_of_same_target_removed(tmp_path: Path):
    hour = 3600
    dead, live = _dead_pid(), os.getpid()
    tag = atomic._writer_tag
    stale_dead = _make(tmp_path / f".g.ply.{tag(dead)}.abcd1234.tmp", False, 2 * hour)
    legacy_old = _make(tmp_path / ".g.ply.k3j_x9q2.tmp", False, 2 * hour)  # mkstemp's old names
    live_old = _make(tmp_path / f".g.ply.{tag(live)}.zzzz9999.tmp", False, 2 * hour)
    dead_fresh = _make(tmp_path / f".g.ply.{tag(dead)}.efgh5678.tmp", False, 60)
    legacy_fresh = _make(tmp_path / ".g.ply.qwer_123.tmp", False, 60)
    other_target = _make(tmp_path / f".h.ply.{tag(dead)}.abcd1234.tmp", False, 2 * hour)
    not_ours = _make(tmp_path / ".g.ply.notes.tmp", False, 2 * hour)
    old_dir_backup = _make(tmp_path / ".g.ply.abcd1234.old", True, 2 * hour)

    atomic_write_bytes(tmp_path / "g.ply", b"new")

    assert (tmp_path / "g.ply").read_bytes() == b"new"
    assert not stale_dead.exists() and not legacy_old.exists()
    for kept in (live_old, dead_fresh, legacy_fresh, other_target, not_ours, old_dir_backup):
        assert kept.exists(), kept.name


def test_stale_temp_directories_removed_by_atomic_directory(tmp_path: Path):
    dead = _dead_pid()
    stale = _make(tmp_path / f".renders.{atomic._writer_tag(dead)}.a1b2c3d4.tmp", True, 7200)
    live = _make(tmp_path / f".renders.{atomic._writer_tag(os.getpid())}.a1b2c3d4.tmp", True, 7200)
    with atomic_directory(tmp_path / "renders") as tmp:
        (tmp / "0.png").write_bytes(b"png")
        # The writer's own temp directory carries its pid, so a concurrent cleanup keeps it.
        assert tmp.name.startswith(f".renders.{atomic._writer_tag(os.getpid())}.")
    assert (tmp_path / "renders" / "0.png").read_bytes() == b"png"
    assert not stale.exists() and live.exists()


def test_temp_file_name_carries_writer_pid(tmp_path: Path):
    seen = []
    with atomic.atomic_write(tmp_path / "x.bin") as f:
        seen += [p.name for p in tmp_path.iterdir()]
        f.write(b"1")
    assert len(seen) == 1 and seen[0].startswith(f".x.bin.{atomic._writer_tag(os.getpid())}.")
    assert seen[0].endswith(".tmp")
