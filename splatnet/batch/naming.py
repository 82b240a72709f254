"""Output names of a run over many clips: one stem per clip, unique within the run."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from splatnet.errors import ValidationError


def clip_dir(path: str | os.PathLike) -> Path:
    """The clip directory a CLIP argument stands for, made absolute without resolving links."""
    p = Path(os.path.abspath(path))
    return p.parent if p.name == "clip.json" and p.is_file() else p


def output_stems(clips: Sequence[str]) -> list[str]:
    """Output file stems for ``--out-dir``, one per clip, unique within the run.

    A clip is named after its directory; clips whose names collide (case-insensitively, for
    case-insensitive file systems) take their parent folders in front, as few as tell them apart:
    ``/d/a/clip, /d/b/clip -> a_clip, b_clip``. Inputs that no parent folder tells apart (the same
    clip given twice) are an error naming both.
    """
    parts = [clip_dir(c).parts[1:] or ("clip",) for c in clips]  # [1:]: no root anchor
    depth = [1] * len(clips)
    while True:
        stems = ["_".join(p[-d:]) for p, d in zip(parts, depth)]
        groups: dict[str, list[int]] = {}
        for i, stem in enumerate(stems):
            groups.setdefault(stem.casefold(), []).append(i)
        clashes = [g for g in groups.values() if len(g) > 1]
        if not clashes:
            return stems
        for group in clashes:
            longer = [i for i in group if depth[i] < len(parts[i])]
            if not longer:
                a, b = (clips[i] for i in group[:2])
                same = os.path.realpath(clip_dir(a)) == os.path.realpath(clip_dir(b))
                raise ValidationError(
                    f"{a} and {b}: " + ("the same clip given twice" if same else
                                        f"both would be written as {stems[group[0]]}.*; "
                                        f"reconstruct them in separate runs"))
            for i in longer:
                depth[i] += 1
