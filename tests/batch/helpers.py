"""Shared by the batch tests."""

from __future__ import annotations

import json
from pathlib import Path

SEEDS = (1, 2, 3)
#: The fleet's broken clips and what is wrong with them (conftest.py's ``fleet``).
BROKEN = {"c04": "clip.json", "c09": "images/cam_back/000001.jpg"}


def read_lines(out_dir: Path) -> list[dict]:
    """Every line of ``out_dir/results.jsonl``, in order."""
    return [json.loads(x) for x in (out_dir / "results.jsonl").read_text().splitlines()]


#: A clip the kill tests make slow on purpose (the network at 256x448 on 6 views: seconds on a
#: CPU), so that a worker killed this long after the clip reaches it dies inside the network.
SLOW_SIZE = [256, 448]
KILL_AFTER_S = 0.3


def manifest_with_slow_clip(path: Path, clips: list[str], slow: str) -> Path:
    """A JSONL manifest of ``clips`` where ``slow`` runs at :data:`SLOW_SIZE`."""
    path.write_text("".join(json.dumps({"clip": c, **({"size": SLOW_SIZE} if c == slow else {})})
                            + "\n" for c in clips))
    return path
