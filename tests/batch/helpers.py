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
