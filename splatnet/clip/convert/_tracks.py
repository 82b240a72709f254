"""Annotated 3D boxes of single frames → actor tracks (shared by the converters)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from splatnet.clip.actors import Actor
from splatnet.errors import ValidationError


@dataclass(frozen=True)
class Box:
    """One annotated box of one clip frame, as a converter reads it.

    ``track``: the source's object id (the same object keeps it across frames); ``frame``: the
    clip frame index; ``box_to_world``: ``[4, 4]`` float64 in the frame of the clip's ego poses,
    box frame x = length (forward), y = width (left), z = height (up), origin at the centre;
    ``size``: ``(length, width, height)`` metres; ``moving``: per-frame flag or None;
    ``where``: the source file and entry, for error messages.
    """

    track: str
    label: str
    frame: int
    box_to_world: np.ndarray
    size: tuple[float, float, float]
    moving: bool | None
    where: str


def check_size(size: Sequence[float], where: str) -> tuple[float, float, float]:
    """``(length, width, height)`` as floats, each finite and positive."""
    try:
        vals = tuple(float(v) for v in size)
    except (TypeError, ValueError):
        vals = ()
    if len(vals) != 3 or not all(math.isfinite(v) and v > 0 for v in vals):
        raise ValidationError(f"{where}: box size must be 3 finite positive numbers (metres), got {size!r}")
    return vals  # type: ignore[return-value]


def actors_from_boxes(boxes: Iterable[Box]) -> list[Actor]:
    """Group boxes by track into :class:`~splatnet.clip.Actor` s.

    Actors are ordered by first frame, then id; each track's entries by frame. The size is the
    per-axis median over the track (sources give one size per object; the median keeps one
    mislabelled frame from resizing the whole track), the label is the track's first. A track
    with two boxes in one frame is an error naming both entries. ``moving`` is kept when every
    entry of the track has it, else None.
    """
    tracks: dict[str, list[Box]] = {}
    for b in boxes:
        tracks.setdefault(b.track, []).append(b)
    actors = []
    for tid, bs in tracks.items():
        bs = sorted(bs, key=lambda b: b.frame)
        for a, b in zip(bs, bs[1:]):
            if a.frame == b.frame:
                raise ValidationError(f"{b.where}: object {tid!r} has a second box in clip frame "
                                      f"{b.frame} (first: {a.where})")
        size = np.median(np.array([b.size for b in bs]), axis=0)
        moving = [b.moving for b in bs]
        try:
            actors.append(Actor(
                tid, bs[0].label, (float(size[0]), float(size[1]), float(size[2])),
                np.array([b.frame for b in bs], dtype=np.int64),
                np.stack([np.asarray(b.box_to_world, dtype=np.float64) for b in bs]),
                np.array(moving, dtype=bool) if all(m is not None for m in moving) else None,
            ))
        except ValidationError as e:
            raise ValidationError(f"{bs[0].where}: {e}") from None
    actors.sort(key=lambda a: (int(a.frames[0]), a.id))
    return actors
