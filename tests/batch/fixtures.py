"""Tiny clips for the batch tests: 12 clip folders (3 synthetic streets, copied), two of them broken
(a clip.json that is not JSON, a missing image), and a manifest listing all twelve.

Test modules import these fixtures by name (not a conftest.py: other tests import the root
``conftest`` module by name, which a second conftest on the path would shadow). They are made once
per process whichever module asks first."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from batch.helpers import BROKEN, SEEDS

from splatnet.cli import main

_MADE: dict[str, object] = {}


@pytest.fixture(scope="session")
def street_clips(tmp_path_factory) -> list[Path]:
    """Three synthetic clips: 2 cameras x 3 frames at 64x112 (seeds 1-3)."""
    if "streets" in _MADE:
        return _MADE["streets"]
    root = tmp_path_factory.mktemp("streets")
    out = []
    for s in SEEDS:
        dst = root / f"seed{s}"
        assert main(["synth", str(dst), "--seed", str(s), "--size", "64x112", "--cameras", "2",
                     "--frames", "3"]) == 0
        out.append(dst)
    _MADE["streets"] = out
    return out


@pytest.fixture(scope="session")
def fleet(tmp_path_factory, street_clips) -> dict:
    """``{"root", "clips": 12 dirs (c00..c11, two named in BROKEN broken), "good", "manifest"}``.
    Names are unique (c00..c11)."""
    if "fleet" in _MADE:
        return _MADE["fleet"]
    root = tmp_path_factory.mktemp("fleet")
    clips = []
    for i in range(12):
        dst = root / "logs" / f"c{i:02d}"
        shutil.copytree(street_clips[i % len(street_clips)], dst)
        clips.append(dst)
    (root / "logs" / "c04" / "clip.json").write_text("{ not json\n")
    (root / "logs" / "c09" / BROKEN["c09"]).unlink()
    manifest = root / "clips.txt"
    manifest.write_text("# the fleet\n" + "".join(f"logs/{c.name}\n" for c in clips))
    _MADE["fleet"] = {"root": root, "clips": clips, "manifest": manifest,
                      "good": [c for c in clips if c.name not in BROKEN]}
    return _MADE["fleet"]
