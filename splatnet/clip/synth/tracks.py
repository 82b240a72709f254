"""The clip's actors (:class:`splatnet.clip.Actor`) from the generator's own objects.

Every car (parked or moving) and pedestrian of the layout is an actor, whether or not a camera
sees it, with a track over every frame of the clip:

- **id**: ``car_<k>`` or ``ped_<k>``, ``k`` counting that label's objects in layout order (the
  same arguments always give the same ids; ``render_clip(without_actors=...)`` names them).
- **label**: ``"car"`` or ``"pedestrian"``.
- **size**: the tight axis-aligned box of the object's mesh in its own frame (x forward, y left,
  z up), so the box encloses every triangle and touches the mesh on all six sides.
- **box_to_world**: the object's exact pose at the frame's time (the layout's analytic motion)
  composed with the shift from the object's origin (on the ground) to the box centre, in the
  clip's world frame (the ego frame of frame 0, like the clip's ego poses).
- **moving**: the object moves (moving cars and pedestrians walk at a constant speed).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from splatnet.clip.actors import Actor
from splatnet.clip.synth.layout import Layout
from splatnet.errors import ValidationError

#: Layout object kinds that are actors, with the label and id prefix each gets.
ACTOR_KINDS = {"parked_car": ("car", "car"), "moving_car": ("car", "car"),
               "pedestrian": ("pedestrian", "ped")}


def actor_ids(lay: Layout) -> dict[str, int]:
    """``{actor id: layout object index}`` in layout order."""
    counts: dict[str, int] = {}
    out: dict[str, int] = {}
    for i, o in enumerate(lay.objects):
        if o.kind not in ACTOR_KINDS:
            continue
        prefix = ACTOR_KINDS[o.kind][1]
        k = counts.get(prefix, 0)
        counts[prefix] = k + 1
        out[f"{prefix}_{k}"] = i
    return out


def resolve_removed(lay: Layout, without: Sequence[str]) -> dict[str, int]:
    """``{id: object index}`` of the actors ``without`` names; one ``ValidationError`` naming
    every unknown id and this clip's valid ones."""
    if isinstance(without, (str, bytes)) or not isinstance(without, (Sequence, np.ndarray)) \
            or not all(isinstance(a, str) for a in without):
        raise ValidationError(f"synth: without_actors must be a list of actor ids (strings), got "
                              f"{without!r}")
    ids = actor_ids(lay)
    unknown = [a for a in without if a not in ids]
    if unknown:
        raise ValidationError(f"synth: without_actors: unknown actor id(s) {', '.join(unknown)}; "
                              f"this clip's actors are {describe_ids(ids)}")
    twice = sorted({a for a in without if list(without).count(a) > 1})
    if twice:
        raise ValidationError(f"synth: without_actors: {', '.join(twice)} given twice")
    return {a: ids[a] for a in without}


def describe_ids(ids: Sequence[str]) -> str:
    """``car_0..car_41, ped_0..ped_6``: every id, each prefix's contiguous run as a range."""
    runs: dict[str, list[int]] = {}
    for a in ids:
        prefix, _, k = a.rpartition("_")
        runs.setdefault(prefix, []).append(int(k))
    parts = []
    for prefix, ks in runs.items():
        if ks == list(range(len(ks))) and len(ks) > 2:
            parts.append(f"{prefix}_0..{prefix}_{len(ks) - 1}")
        else:
            parts.extend(f"{prefix}_{k}" for k in ks)
    return ", ".join(parts) if parts else "(none)"


def tight_box(vertices: np.ndarray) -> tuple[tuple[float, float, float], np.ndarray]:
    """``(size, centre)`` of the axis-aligned box of local ``vertices [V, 3]``: size
    ``(length, width, height)`` in metres and the box centre ``[3]`` in the object's frame."""
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    size = hi - lo
    return (float(size[0]), float(size[1]), float(size[2])), 0.5 * (lo + hi)


def make_actors(lay: Layout, times: Sequence[float], scene_to_world: np.ndarray,
                removed: Sequence[int] = ()) -> list[Actor]:
    """The clip's actors, except the layout objects ``removed``, at every frame time ``times``
    (seconds); ``scene_to_world [4, 4]`` maps the layout's scene frame to the clip's world."""
    gone = set(removed)
    out = []
    frames = np.arange(len(times), dtype=np.int64)
    for aid, i in actor_ids(lay).items():
        if i in gone:
            continue
        o = lay.objects[i]
        size, centre = tight_box(o.mesh.vertices)
        shift = np.eye(4)
        shift[:3, 3] = centre  # box centre in the object's frame
        poses = np.stack([scene_to_world @ lay.object_pose(i, t) @ shift for t in times])
        out.append(Actor(aid, ACTOR_KINDS[o.kind][0], size, frames, poses,
                         np.full(len(times), o.dynamic)))
    return out
