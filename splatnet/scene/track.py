"""``Track``: where an actor's box is over time, on the scene's clock, and the ``TRACK.json`` file.

A track is a list of entries ``(t, box_to_world)``: strictly increasing times in seconds on the
scene clock (the source clip's seconds since its first frame) and rigid 4×4 float64 box-to-world
poses in the scene's world frame (box frame as :mod:`splatnet.clip.actors`: origin at the box
centre, x forward, y left, z up). Between two entries the pose is interpolated exactly as a clip's
actor is (:func:`splatnet.clip.actors.interpolate_pose`: linear translation, slerp rotation); at an
entry it is exact; before the first and after the last entry the actor is absent.

``TRACK.json`` is a JSON list of entries, all with ``"t"`` (seconds) or all with ``"frame"`` (an
index into the scene's frames, whose time is used)::

    [{"t": 0.0, "box_to_world": [[1, 0, 0, 5], [0, 1, 0, 2], [0, 0, 1, 0.8], [0, 0, 0, 1]]},
     {"t": 0.5, "box_to_world": [[1, 0, 0, 9], [0, 1, 0, 2], [0, 0, 1, 0.8], [0, 0, 0, 1]],
      "moving": true}]

``"moving"`` (optional, for every entry or none) is the per-entry "is moving" flag.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from splatnet.clip import _checks as C
from splatnet.clip.actors import Actor, interpolate_pose, yaw_pose
from splatnet.errors import FormatError, ValidationError

#: Largest |time| (seconds) on a scene clock. The clock counts from the source clip's first
#: frame, so a clip's times are seconds to minutes; at 1e6 s (11.6 days) the Gaussians' float32
#: times already resolve only 0.06 s, and larger values are unit errors (nanosecond stamps).
MAX_TIME_S = 1e6
#: Largest TRACK.json read (a 4×4 pose is ~200 bytes of JSON: this is ~250,000 entries).
MAX_TRACK_FILE_BYTES = 64 << 20
#: Keys of one TRACK.json entry.
ENTRY_KEYS = ("t", "frame", "box_to_world", "moving")


@dataclass(frozen=True, eq=False)
class Track:
    """An actor's box over time (see the module docstring).

    Attributes:
        times: ``[F]`` float64 seconds on the scene clock, finite, strictly increasing.
        box_to_world: ``[F, 4, 4]`` float64 rigid box-to-world poses in the scene's world frame.
        moving: ``[F]`` bool "is moving" flags, or None.
    """

    times: np.ndarray
    box_to_world: np.ndarray
    moving: np.ndarray | None = None

    def __post_init__(self) -> None:
        times, poses, moving = check_track(self.times, self.box_to_world, self.moving, "track")
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "box_to_world", poses)
        object.__setattr__(self, "moving", moving)

    def __len__(self) -> int:
        return int(len(self.times))

    @property
    def span(self) -> tuple[float, float]:
        """``(first, last)`` entry time in seconds: the actor is present within it."""
        return float(self.times[0]), float(self.times[-1])

    def pose_at(self, t: float) -> np.ndarray | None:
        """``[4, 4]`` box-to-world at time ``t`` (seconds), or None outside :attr:`span`."""
        t = float(t)
        if not math.isfinite(t):
            raise ValidationError(f"track: time must be finite, got {t}")
        if t < self.times[0] or t > self.times[-1]:
            return None
        j = int(np.searchsorted(self.times, t, side="left"))
        if self.times[j] == t or np.array_equal(self.box_to_world[j - 1], self.box_to_world[j]):
            return self.box_to_world[j].copy()  # an entry, or standing still between two
        a = (t - self.times[j - 1]) / (self.times[j] - self.times[j - 1])
        return interpolate_pose(self.box_to_world[j - 1], self.box_to_world[j], a)

    def moved(self, dx: float = 0.0, dy: float = 0.0, dyaw: float = 0.0) -> Track:
        """Every entry shifted by ``(dx, dy)`` metres along the world's x and y axes and turned by
        ``dyaw`` radians about the box's own z (up) axis, in place about the box centre:
        ``T' = translate(dx, dy, 0) · T · rot_z(dyaw)``. Times and flags are kept."""
        for name, v in (("dx", dx), ("dy", dy), ("dyaw", dyaw)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValidationError(f"move: {name} must be a finite number, got {v!r}")
        shift = yaw_pose(float(dx), float(dy), 0.0, 0.0)
        turn = yaw_pose(0.0, 0.0, 0.0, float(dyaw))
        return Track(self.times, shift @ self.box_to_world @ turn, self.moving)

    # ------------------------------------------------------------------ constructors
    @staticmethod
    def from_actor(actor: Actor, frame_times: Sequence[float] | np.ndarray) -> Track:
        """A clip actor's track on the clip's clock: entry ``i`` at ``frame_times[actor.frames[i]]``."""
        times = _frame_times(frame_times, "frame_times")
        if int(actor.frames[-1]) >= len(times):
            raise ValidationError(f"actor {actor.id!r}: frame {int(actor.frames[-1])} is out of "
                                  f"range; there are {len(times)} frame time(s)")
        return Track(times[actor.frames], actor.box_to_world, actor.moving)

    @staticmethod
    def from_frames(frames: Sequence[int] | np.ndarray, box_to_world: np.ndarray,
                    frame_times: Sequence[float] | np.ndarray, moving=None) -> Track:
        """A track whose entries are at frames of a scene (``frame_times[frames[i]]``)."""
        times = _frame_times(frame_times, "frame_times")
        fr = np.asarray(frames)
        if fr.ndim != 1 or fr.dtype.kind not in "iu" or np.any(fr < 0) or np.any(fr >= len(times)):
            raise ValidationError(f"track frames: expected frame indices in 0..{len(times) - 1}, "
                                  f"got {fr.tolist()}")
        return Track(times[fr], box_to_world, moving)

    @staticmethod
    def from_json(obj: object, frame_times: Sequence[float] | np.ndarray, where: str = "track"
                  ) -> Track:
        """Parse TRACK.json's content (see the module docstring); ``where`` prefixes errors."""
        if not isinstance(obj, list) or not obj:
            raise ValidationError(f"{where}: expected a non-empty JSON list of entries "
                                  '{"t" or "frame", "box_to_world"[, "moving"]}')
        C.check_json_depth(obj, where, limit=8)
        kind = None
        times, poses, moving = [], [], []
        for i, e in enumerate(obj):
            w = f"{where}[{i}]"
            if not isinstance(e, dict):
                raise ValidationError(f"{w}: expected an object with \"t\" or \"frame\" and "
                                      f"\"box_to_world\", got {type(e).__name__}")
            unknown = sorted(set(e) - set(ENTRY_KEYS))
            if unknown:
                raise ValidationError(f"{w}: unknown key {unknown[0]!r}; valid keys: "
                                      f"{', '.join(ENTRY_KEYS)}")
            has = [k for k in ("t", "frame") if k in e]
            if len(has) != 1:
                raise ValidationError(f"{w}: give exactly one of \"t\" (seconds) or \"frame\" "
                                      "(a frame index of the scene)")
            if kind is None:
                kind = has[0]
            elif has[0] != kind:
                raise ValidationError(f"{w}: uses {has[0]!r} but earlier entries use {kind!r}; "
                                      "a track uses one of them throughout")
            if "box_to_world" not in e:
                raise ValidationError(f"{w}: missing \"box_to_world\" (a 4x4 rigid pose)")
            times.append(_entry_time(e, kind, frame_times, w))
            poses.append(C.check_rigid(e["box_to_world"], f"{w}.box_to_world"))
            if "moving" in e and not isinstance(e["moving"], bool):
                raise ValidationError(f"{w}.moving: must be true or false, got {e['moving']!r}")
            moving.append(e.get("moving"))
        given = [m is not None for m in moving]
        if any(given) and not all(given):
            raise ValidationError(f"{where}: \"moving\" must be given for every entry or none")
        try:
            return Track(np.asarray(times, dtype=np.float64), np.stack(poses),
                         np.asarray(moving, dtype=bool) if all(given) else None)
        except ValidationError as exc:
            raise ValidationError(f"{where}: {exc}") from None

    @staticmethod
    def load(path: str | os.PathLike, frame_times: Sequence[float] | np.ndarray) -> Track:
        """Read a TRACK.json file (``frame_times``: the scene's, for entries given by frame)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: file not found")
        if path.stat().st_size > MAX_TRACK_FILE_BYTES:
            raise FormatError(f"{path}: {path.stat().st_size} bytes, larger than a track file "
                              f"may be ({MAX_TRACK_FILE_BYTES >> 20} MiB)")
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise FormatError(f"{path}: not valid JSON ({' '.join(str(exc).split())[:200]})") from None
        return Track.from_json(obj, frame_times, str(path))

    def to_json(self) -> list[dict]:
        """The TRACK.json content of this track (times as ``"t"``)."""
        out = []
        for i in range(len(self)):
            e = {"t": float(self.times[i]), "box_to_world": self.box_to_world[i].tolist()}
            if self.moving is not None:
                e["moving"] = bool(self.moving[i])
            out.append(e)
        return out

    def save(self, path: str | os.PathLike, *, force: bool = False) -> None:
        """Write TRACK.json atomically; an existing file is replaced only with ``force``."""
        from splatnet.io.atomic import atomic_write_text

        path = Path(path)
        if path.exists() and not path.is_dir() and not force:
            raise FileExistsError(f"{path}: already exists (pass force=True to overwrite)")
        atomic_write_text(path, json.dumps(self.to_json(), indent=1, allow_nan=False) + "\n")


def check_track(times: object, box_to_world: object, moving: object, where: str
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Every rule of :class:`Track`: ``(times [F] float64, poses [F, 4, 4] float64, moving)``."""
    t = _as_float_array(times, f"{where}.times")
    if t.ndim != 1 or len(t) == 0:
        raise ValidationError(f"{where}.times: expected a non-empty 1-D array of seconds, got "
                              f"shape {list(t.shape)}")
    _check_times(t, f"{where}.times")
    poses = _as_float_array(box_to_world, f"{where}.box_to_world")
    if poses.shape != (len(t), 4, 4):
        raise ValidationError(f"{where}.box_to_world: expected [{len(t)}, 4, 4] (one pose per "
                              f"time), got {list(poses.shape)}")
    for i in range(len(t)):
        w = f"{where}[{i}].box_to_world (t = {t[i]:.6g} s)"
        C.check_rigid(poses[i], w)
        C.check_translation(poses[i], w)
    if moving is not None:
        m = np.asarray(moving)
        if m.shape != t.shape or m.dtype != bool:
            raise ValidationError(f"{where}.moving: expected bool [{len(t)}] or None, got "
                                  f"{m.dtype} {list(m.shape)}")
        moving = read_only(m.copy())
    return read_only(t), read_only(poses), moving


def _check_times(t: np.ndarray, where: str, *, ordered: bool = True) -> None:
    """Finite, within ±MAX_TIME_S, and (``ordered``) strictly increasing."""
    if not np.all(np.isfinite(t)):
        raise ValidationError(f"{where}: {int((~np.isfinite(t)).sum())} non-finite time(s) (NaN "
                              "or inf)")
    if np.any(np.abs(t) > MAX_TIME_S):
        raise ValidationError(f"{where}: times must lie within ±{MAX_TIME_S:g} s of the scene "
                              f"clock's origin, got {float(np.abs(t).max()):.6g} s")
    bad = np.flatnonzero(np.diff(t) <= 0) if ordered else ()
    if len(bad):
        i = int(bad[0])
        raise ValidationError(f"{where}: times must be strictly increasing; entry {i + 1} "
                              f"({t[i + 1]:.6g} s) is not after entry {i} ({t[i]:.6g} s)")


def _as_float_array(value: object, where: str) -> np.ndarray:
    """``value`` as float64, refusing booleans, strings and objects (NumPy would convert some)."""
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{where}: expected an array of numbers ({exc})") from None
    if raw.dtype.kind not in "iuf":
        raise ValidationError(f"{where}: expected real numbers, got dtype {raw.dtype}")
    return raw.astype(np.float64)  # always a copy: whoever passed it may change theirs


def read_only(a: np.ndarray) -> np.ndarray:
    """``a`` made read-only (the arrays of immutable scene objects; ``a`` is their own copy)."""
    a.setflags(write=False)
    return a


def _frame_times(frame_times: object, where: str) -> np.ndarray:
    t = _as_float_array(frame_times, where)
    if t.ndim != 1 or len(t) == 0:
        raise ValidationError(f"{where}: expected a non-empty 1-D array of seconds")
    _check_times(t, where)
    return t


def _entry_time(e: dict, kind: str, frame_times: object, where: str) -> float:
    v = e[kind]
    if kind == "frame":
        times = _frame_times(frame_times, "frame_times")
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < len(times):
            raise ValidationError(f"{where}.frame: must be a frame index of the scene in "
                                  f"0..{len(times) - 1}, got {v!r}")
        return float(times[v])
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValidationError(f"{where}.t: must be a finite number of seconds, got {v!r}")
    return float(v)
