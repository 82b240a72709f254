"""Actor tracks: the tracked objects of a clip (cars, pedestrians, …) as boxes moving over time.

An :class:`Actor` is one object: an id unique in its clip, a free-form label, a box size and a
box-to-world pose for each frame it is present in. The **box frame** has its origin at the box
centre, x along the length (the object's forward direction), y along the width (its left) and z
along the height (up), so the box spans ``[-l/2, l/2] × [-w/2, w/2] × [-h/2, h/2]``.

Poses are rigid 4×4 float64 matrices in the clip's world frame (:class:`~splatnet.clip.Clip`
re-expresses the manifest's poses exactly as it does ego and camera poses). Between two frames an
actor is present in, :meth:`Actor.pose_at` interpolates (linear translation, spherical-linear
rotation); outside its first and last frame it is absent (``None``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from splatnet.clip import _checks as C
from splatnet.errors import FormatError, ValidationError

#: Fields of one actor in ``clip.json`` (format 1.1) and of one entry of its ``track``.
ACTOR_KEYS = ("id", "label", "size", "track")
TRACK_KEYS = ("frame", "box_to_world", "moving")
#: Longest actor id / label (ids name actors on the command line: ``--remove ID``).
MAX_ID_LENGTH = 128


@dataclass(frozen=True, eq=False)
class Actor:
    """One tracked object.

    Attributes:
        id: unique within the clip (a string; PandaSet's uuid, DGP's instance id, …).
        label: class name as the source data says it (``"car"``, ``"pedestrian"``, …).
        size: ``(length, width, height)`` of the box in metres, all positive.
        frames: ``[F]`` int64, strictly increasing frame indices the actor is present in.
        box_to_world: ``[F, 4, 4]`` float64 rigid box-to-world poses, one per frame.
        moving: ``[F]`` bool per-frame "is moving" flags, or None when the source has none.
    """

    id: str
    label: str
    size: tuple[float, float, float]
    frames: np.ndarray
    box_to_world: np.ndarray
    moving: np.ndarray | None = None

    def __post_init__(self) -> None:
        where = f"actor {self.id!r}" if isinstance(self.id, str) else "actor"
        check_actor_fields(self.id, self.label, self.size, self.frames, self.box_to_world,
                           self.moving, where)

    @property
    def num_frames(self) -> int:
        return int(len(self.frames))

    def present(self, frame: int) -> bool:
        """Whether the actor has a box at ``frame`` (an exact frame of its track)."""
        return bool(np.any(self.frames == frame))

    def pose_at_frame(self, frame: int) -> np.ndarray | None:
        """``[4, 4]`` box-to-world at ``frame``, or None when the actor is not there."""
        i = np.flatnonzero(self.frames == frame)
        return None if len(i) == 0 else self.box_to_world[int(i[0])].copy()

    def pose_at(self, t: float, frame_times: Sequence[float] | np.ndarray) -> np.ndarray | None:
        """``[4, 4]`` box-to-world at time ``t`` (seconds, on the clip's frame clock).

        ``frame_times[i]`` is frame ``i``'s timestamp. Between two track entries the pose is
        interpolated (translation linearly, rotation by slerp); at a track entry it is exact;
        before the first or after the last entry the actor is absent: None.
        """
        times = np.asarray(frame_times, dtype=np.float64)[self.frames]
        t = float(t)
        if not math.isfinite(t):
            raise ValidationError(f"actor {self.id!r}: time must be finite, got {t}")
        if t < times[0] or t > times[-1]:
            return None
        j = int(np.searchsorted(times, t, side="left"))
        if times[j] == t:
            return self.box_to_world[j].copy()
        a = (t - times[j - 1]) / (times[j] - times[j - 1])
        return interpolate_pose(self.box_to_world[j - 1], self.box_to_world[j], a)

    def corners(self, index: int) -> np.ndarray:
        """``[8, 3]`` world corners of the box at track entry ``index``."""
        return box_corners(self.size, self.box_to_world[index])

    def to_json(self, pose_to_json=None) -> dict:
        """The manifest entry; ``pose_to_json`` maps a world pose to the manifest's frame."""
        f = pose_to_json or (lambda T: T)
        track = []
        for i, fr in enumerate(self.frames.tolist()):
            e = {"frame": int(fr), "box_to_world": C.matrix_to_json(f(self.box_to_world[i]))}
            if self.moving is not None:
                e["moving"] = bool(self.moving[i])
            track.append(e)
        return {"id": self.id, "label": self.label, "size": [float(s) for s in self.size],
                "track": track}

    @staticmethod
    def from_json(obj: object, where: str, num_frames: int, pose_from_json=None) -> Actor:
        """Parse one manifest entry (``where`` names it in errors); poses mapped by
        ``pose_from_json`` (the manifest frame → the clip's world) after the rigidity check."""
        C.check_keys(obj, ACTOR_KEYS, ACTOR_KEYS, where)
        aid = obj["id"]
        w = f"{where} ({aid!r})" if isinstance(aid, str) else where
        track = obj["track"]
        if not isinstance(track, list) or not track:
            raise FormatError(f"{w}.track: expected a non-empty list of "
                              "{frame, box_to_world[, moving]} entries")
        frames, poses, moving = [], [], []
        for i, e in enumerate(track):
            C.check_keys(e, TRACK_KEYS, ("frame", "box_to_world"), f"{w}.track[{i}]")
            fr = e["frame"]
            if isinstance(fr, bool) or not isinstance(fr, int) or not 0 <= fr < num_frames:
                raise ValidationError(f"{w}.track[{i}].frame: must be a frame index in "
                                      f"0..{num_frames - 1}, got {fr!r}")
            T = C.check_rigid(e["box_to_world"], f"{w}.track[{i}].box_to_world")
            poses.append(pose_from_json(T) if pose_from_json else T)
            frames.append(fr)
            if "moving" in e and not isinstance(e["moving"], bool):
                raise ValidationError(f"{w}.track[{i}].moving: must be true or false, "
                                      f"got {e['moving']!r}")
            moving.append(e.get("moving"))
        has = [m is not None for m in moving]
        if any(has) and not all(has):
            raise ValidationError(f"{w}.track: 'moving' must be given for every entry or none")
        return Actor(aid, obj["label"], _as_size(obj["size"], f"{w}.size"),
                     np.asarray(frames, dtype=np.int64), np.stack(poses),
                     np.asarray(moving, dtype=bool) if all(has) else None)


def check_actor_fields(aid, label, size, frames, box_to_world, moving, where: str) -> None:
    """Every rule of :class:`Actor` (one ``ValidationError`` naming ``where`` and the field)."""
    if not isinstance(aid, str) or not aid or len(aid) > MAX_ID_LENGTH or "," in aid \
            or ":" in aid or aid != aid.strip() or not aid.isprintable():
        raise ValidationError(f"{where}: id must be a non-empty printable string of at most "
                              f"{MAX_ID_LENGTH} characters without ',' or ':' or surrounding "
                              f"spaces (ids are named on the command line), got {aid!r}")
    if not isinstance(label, str) or len(label) > MAX_ID_LENGTH or not label.isprintable():
        raise ValidationError(f"{where}: label must be a printable string of at most "
                              f"{MAX_ID_LENGTH} characters, got {label!r}")
    _as_size(size, f"{where}.size")
    fr = np.asarray(frames)
    if fr.ndim != 1 or len(fr) == 0 or fr.dtype.kind not in "iu":
        raise ValidationError(f"{where}.frames: expected a non-empty 1-D integer array, got "
                              f"{fr.dtype} {list(fr.shape)}")
    if np.any(fr < 0) or np.any(np.diff(fr) <= 0):
        raise ValidationError(f"{where}.frames: frame indices must be >= 0 and strictly "
                              f"increasing, got {fr.tolist()}")
    T = np.asarray(box_to_world)
    if T.shape != (len(fr), 4, 4) or T.dtype != np.float64:
        raise ValidationError(f"{where}.box_to_world: expected float64 [{len(fr)}, 4, 4], got "
                              f"{T.dtype} {list(T.shape)}")
    # Rigid only: how far a pose may lie from the origin is the clip's rule, checked where poses
    # are re-expressed in the clip's world frame (write_clip, Clip.load), as for ego poses.
    for i in range(len(fr)):
        C.check_rigid(T[i], f"{where}.box_to_world[{i}] (frame {int(fr[i])})")
    if moving is not None:
        m = np.asarray(moving)
        if m.shape != fr.shape or m.dtype != bool:
            raise ValidationError(f"{where}.moving: expected bool [{len(fr)}] or None, got "
                                  f"{m.dtype} {list(m.shape)}")


def check_actors(actors: Sequence[Actor], num_frames: int, where: str) -> list[Actor]:
    """A clip's actors: each an :class:`Actor`, ids unique, frames within ``num_frames``."""
    if isinstance(actors, (str, bytes, Mapping)) or not isinstance(actors, Sequence):
        raise ValidationError(f"{where}: expected a list of splatnet.clip.Actor, got "
                              f"{type(actors).__name__}")
    seen: dict[str, int] = {}
    for i, a in enumerate(actors):
        if not isinstance(a, Actor):
            raise ValidationError(f"{where}[{i}]: expected splatnet.clip.Actor, got "
                                  f"{type(a).__name__}")
        if a.id in seen:
            raise ValidationError(f"{where}[{i}]: actor id {a.id!r} is used twice (also at "
                                  f"[{seen[a.id]}]); ids must be unique in a clip")
        seen[a.id] = i
        if int(a.frames[-1]) >= num_frames:
            raise ValidationError(f"{where}[{i}] ({a.id!r}): frame {int(a.frames[-1])} is out of "
                                  f"range; the clip has {num_frames} frame(s)")
    return list(actors)


def box_corners(size: Sequence[float], box_to_world: np.ndarray) -> np.ndarray:
    """``[8, 3]`` world corners of a ``(length, width, height)`` box at ``box_to_world``."""
    l, w, h = (float(s) / 2 for s in size)  # noqa: E741
    signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)
    local = signs * np.array([l, w, h])
    T = np.asarray(box_to_world, dtype=np.float64)
    return local @ T[:3, :3].T + T[:3, 3]


def points_in_box(points: np.ndarray, size: Sequence[float], box_to_world: np.ndarray,
                  margin: float = 0.0) -> np.ndarray:
    """``[M]`` bool: which world ``points [M, 3]`` lie inside the box (grown by ``margin`` m)."""
    T = np.asarray(box_to_world, dtype=np.float64)
    local = (np.asarray(points, dtype=np.float64) - T[:3, 3]) @ T[:3, :3]
    half = np.asarray(size, dtype=np.float64) / 2 + margin
    return np.all(np.abs(local) <= half, axis=1)


def interpolate_pose(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Rigid pose between ``a`` (t = 0) and ``b`` (t = 1): lerp translation, slerp rotation."""
    qa, qb = _rot_to_quat(a[:3, :3]), _rot_to_quat(b[:3, :3])
    d = float(np.dot(qa, qb))
    if d < 0:
        qb, d = -qb, -d
    if d > 0.9995:
        q = qa + t * (qb - qa)
    else:
        th = math.acos(d)
        q = (math.sin((1 - t) * th) * qa + math.sin(t * th) * qb) / math.sin(th)
    out = np.eye(4)
    out[:3, :3] = _quat_to_rot(q / np.linalg.norm(q))
    out[:3, 3] = (1 - t) * a[:3, 3] + t * b[:3, 3]
    return out


def yaw_pose(x: float, y: float, z: float, yaw: float) -> np.ndarray:
    """``[4, 4]`` box-to-world of a box at ``(x, y, z)`` turned by ``yaw`` about +z."""
    c, s = math.cos(yaw), math.sin(yaw)
    T = np.eye(4)
    T[:3, :3] = [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
    T[:3, 3] = [x, y, z]
    return T


def _as_size(size: object, where: str) -> tuple[float, float, float]:
    try:
        vals = [v for v in size]  # type: ignore[union-attr]
    except TypeError:
        vals = None
    if vals is None or len(vals) != 3 or any(
            isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating))
            or not math.isfinite(float(v)) or not 0 < float(v) <= 1e3 for v in vals):
        raise ValidationError(f"{where}: expected [length, width, height] in metres, each in "
                              f"(0, 1000], got {size!r}")
    return (float(vals[0]), float(vals[1]), float(vals[2]))


def _rot_to_quat(R: np.ndarray) -> np.ndarray:
    """Rotation matrix → unit quaternion (w, x, y, z), numerically stable (Shepperd)."""
    m = np.asarray(R, dtype=np.float64)
    tr = m[0, 0] + m[1, 1] + m[2, 2]
    if tr > 0:
        s = math.sqrt(tr + 1.0) * 2
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2]) * 2
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] > m[2, 2]:
        s = math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2]) * 2
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1]) * 2
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    q = np.asarray(q)
    return q / np.linalg.norm(q)


def _quat_to_rot(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])
