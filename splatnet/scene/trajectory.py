"""Replaying a scene along new ego paths: ``EgoTrajectory`` (where the ego is over time), the rig's
cameras on it, and :func:`replay`, which renders the scene (and a simulated LiDAR) along it.

An **ego trajectory** is keyframes ``(t, ego_to_world)``: strictly increasing times in seconds on
the scene clock and rigid 4×4 float64 ego-to-world poses in the scene's world frame (ego frame:
x forward, y left, z up, as the source clip's). Between keyframes the pose is interpolated as an
actor's is (:func:`splatnet.clip.actors.interpolate_pose`: linear translation, slerp rotation); at
a keyframe it is exact; outside the keyframes' span it is undefined (an error). The keyframes are
also the times :func:`replay` renders.

Trajectories come from the scene's own log (:meth:`EgoTrajectory.from_scene`), from a JSON file
(:meth:`EgoTrajectory.load`)::

    {"poses": [{"t": 0.0, "ego_to_world": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]},
               {"t": 0.1, "ego_to_world": [[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}]}

or are made from another: shifted sideways (:meth:`~EgoTrajectory.shifted_lateral`), changing
lane (:meth:`~EgoTrajectory.lane_change`), driving the same path faster or slower
(:meth:`~EgoTrajectory.speed_scaled`), or sampled at other times (:meth:`~EgoTrajectory.resampled`).
The scene's actors always keep their own (log) time: a camera at time ``t`` sees every actor where
its track has it at ``t``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from splatnet.cameras import Cameras
from splatnet.clip import _checks as C
from splatnet.clip.actors import interpolate_pose
from splatnet.errors import FormatError, ValidationError
from splatnet.scene.rig import Rig
from splatnet.scene.track import _as_float_array, _check_times, read_only

if TYPE_CHECKING:
    from splatnet.scene.lidar import LidarSensor
    from splatnet.scene.scene import Scene

#: Largest trajectory JSON read (a 4×4 pose is ~200 bytes of JSON: ~250,000 poses).
MAX_TRAJECTORY_FILE_BYTES = 64 << 20
#: Keys of a trajectory file and of one of its poses.
FILE_KEYS = ("poses",)
POSE_KEYS = ("t", "ego_to_world")


@dataclass(frozen=True, eq=False)
class EgoTrajectory:
    """The ego's path over time (see the module docstring).

    Attributes:
        times: ``[T]`` float64 seconds on the scene clock, finite, strictly increasing, T ≥ 1.
        ego_to_world: ``[T, 4, 4]`` float64 rigid ego-to-world poses in the scene's world frame.
    """

    times: np.ndarray
    ego_to_world: np.ndarray

    def __post_init__(self) -> None:
        t = _as_float_array(self.times, "trajectory.times")
        if t.ndim != 1 or len(t) == 0:
            raise ValidationError(f"trajectory.times: expected a non-empty 1-D array of seconds, "
                                  f"got shape {list(t.shape)}")
        _check_times(t, "trajectory.times")
        poses = _as_float_array(self.ego_to_world, "trajectory.ego_to_world")
        if poses.shape != (len(t), 4, 4):
            raise ValidationError(f"trajectory.ego_to_world: expected [{len(t)}, 4, 4] (one pose "
                                  f"per time), got {list(poses.shape)}")
        for i in range(len(t)):
            where = f"trajectory.ego_to_world[{i}] (t = {t[i]:.6g} s)"
            C.check_rigid(poses[i], where)
            C.check_translation(poses[i], where)
        object.__setattr__(self, "times", read_only(t))
        object.__setattr__(self, "ego_to_world", read_only(poses))

    def __len__(self) -> int:
        return int(len(self.times))

    @property
    def span(self) -> tuple[float, float]:
        """``(first, last)`` keyframe time in seconds: the trajectory is defined within it."""
        return float(self.times[0]), float(self.times[-1])

    # ------------------------------------------------------------------ sampling
    def pose_at(self, t: float) -> np.ndarray:
        """``[4, 4]`` float64 ego-to-world at time ``t`` (seconds): the keyframe's pose at a
        keyframe, interpolated between keyframes; a time outside :attr:`span` is an error."""
        t = _finite(t, "t")
        t0, t1 = self.span
        if not t0 <= t <= t1:
            raise ValidationError(f"trajectory: t = {t:.6g} s is outside its span {t0:.6g}..{t1:.6g} s")
        j = int(np.searchsorted(self.times, t, side="left"))
        if self.times[j] == t:
            return self.ego_to_world[j].copy()
        a = (t - self.times[j - 1]) / (self.times[j] - self.times[j - 1])
        return interpolate_pose(self.ego_to_world[j - 1], self.ego_to_world[j], a)

    def resampled(self, times: Sequence[float] | np.ndarray) -> EgoTrajectory:
        """The same path with keyframes at ``times`` (strictly increasing, within :attr:`span`)."""
        t = _as_float_array(times, "times")
        if t.ndim != 1 or len(t) == 0:
            raise ValidationError("times: expected a non-empty 1-D array of seconds")
        _check_times(t, "times")
        return EgoTrajectory(t, np.stack([self.pose_at(x) for x in t]))

    def arc_length(self) -> np.ndarray:
        """``[T]`` float64 distance (m) the ego origin has travelled at each keyframe, along the
        straight segments between keyframes (the interpolated path); 0 at the first."""
        steps = np.linalg.norm(np.diff(self.ego_to_world[:, :3, 3], axis=0), axis=1)
        return np.concatenate([[0.0], np.cumsum(steps)])

    # ------------------------------------------------------------------ new paths
    def shifted_lateral(self, metres: float) -> EgoTrajectory:
        """Every pose moved ``metres`` along its own left (+y) axis (negative = right):
        ``T' = T · translate(0, metres, 0)``; orientation and times kept."""
        return self._offset(np.full(len(self), _finite(metres, "shift")))

    def lane_change(self, distance: float, t0: float, t1: float) -> EgoTrajectory:
        """A lane change: each keyframe moved sideways (along its own left axis, negative =
        right) by ``distance · (1 − cos(π s)) / 2``, ``s = clip((t − t0) / (t1 − t0), 0, 1)``:
        0 up to ``t0``, rising smoothly (zero lateral speed at both ends) to ``distance`` at
        ``t1``, ``distance`` after. Applied at the keyframes; resample first
        (:meth:`resampled`) for a denser ramp than the keyframes give."""
        d = _finite(distance, "lane change distance")
        a, b = _finite(t0, "lane change t0"), _finite(t1, "lane change t1")
        if not b > a:
            raise ValidationError(f"lane change: t1 ({b:g} s) must be after t0 ({a:g} s)")
        s = np.clip((self.times - a) / (b - a), 0.0, 1.0)
        return self._offset(d * (1.0 - np.cos(np.pi * s)) / 2.0)

    def speed_scaled(self, factor: float, rate: float) -> EgoTrajectory:
        """The same path driven ``factor`` times as fast (or slow), sampled ``rate`` times a
        second from the first keyframe's time.

        At time ``τ`` the ego is where this trajectory has it at ``t0 + factor · (τ − t0)``
        (``t0`` the first time): the point of the path at the arc length the original reaches
        then, with the original's orientation there, so everywhere on the path the ego moves
        ``factor`` times the original's speed. The times ``τ`` are the scene clock (actors keep
        their log time). Sampling stops at the end of the path (``factor > 1``: after
        ``(t_end − t0) / factor`` s) or at the end of this trajectory's time span
        (``factor < 1``: the scene has no actor poses after it), whichever comes first.
        ``factor = 0`` parks the ego at its first pose.
        """
        k = _finite(factor, "speed factor")
        r = _finite(rate, "rate")
        if not 0.0 <= k <= 1e3:
            raise ValidationError(f"speed factor: expected 0 to 1000, got {k:g}")
        if not r > 0:
            raise ValidationError(f"rate: expected a positive number of samples a second, got {r:g}")
        t0, t1 = self.span
        duration = (t1 - t0) / max(k, 1.0)
        n = int(math.floor(duration * r + 1e-9)) + 1
        if n > 10_000_000:
            raise ValidationError(f"speed_scaled: {n} samples ({duration:.6g} s at {r:g} a second); "
                                  "lower the rate")
        tau = t0 + np.arange(n) / r
        source = np.minimum(t0 + k * (tau - t0), t1)  # rounding must not step off the path
        return EgoTrajectory(tau, np.stack([self.pose_at(s) for s in source]))

    def _offset(self, lateral: np.ndarray) -> EgoTrajectory:
        poses = self.ego_to_world.copy()
        poses[:, :3, 3] += poses[:, :3, 1] * lateral[:, None]
        return EgoTrajectory(self.times, poses)

    # ------------------------------------------------------------------ cameras
    def cameras(self, rig: Rig, t: float, names: Sequence[str] | None = None,
                size: tuple[int, int] | None = None) -> Cameras:
        """The rig's cameras on this trajectory at time ``t``: see :func:`rig_cameras`."""
        return rig_cameras(rig, self.pose_at(t), t, names, size)

    # ------------------------------------------------------------------ constructors and files
    @staticmethod
    def from_scene(scene: Scene) -> EgoTrajectory:
        """The scene's own log: a keyframe per source frame (``frame_times``, ``ego_to_world``)."""
        return EgoTrajectory(scene.frame_times, scene.ego_to_world)

    @staticmethod
    def from_json(obj: object, where: str = "trajectory") -> EgoTrajectory:
        """Parse a trajectory file's content (see the module docstring); errors start with
        ``where`` and name the pose."""
        if not isinstance(obj, dict):
            raise ValidationError(f"{where}: expected a JSON object {{\"poses\": [{{\"t\": seconds, "
                                  f"\"ego_to_world\": 4x4}}, ...]}}, got {type(obj).__name__}")
        C.check_json_depth(obj, where, limit=8)
        unknown = sorted(set(obj) - set(FILE_KEYS))
        if unknown:
            raise ValidationError(f"{where}: unknown key {unknown[0]!r}; a trajectory file holds "
                                  "only \"poses\"")
        poses = obj.get("poses")
        if not isinstance(poses, list):
            raise ValidationError(f"{where}: \"poses\" must be a list of {{\"t\", \"ego_to_world\"}} "
                                  f"objects, got {'nothing' if poses is None else type(poses).__name__}")
        if not poses:
            raise ValidationError(f"{where}: \"poses\" is empty; a trajectory needs at least one pose")
        times, mats = [], []
        for i, e in enumerate(poses):
            w = f"{where}: poses[{i}]"
            if not isinstance(e, dict):
                raise ValidationError(f"{w}: expected an object with \"t\" and \"ego_to_world\", got "
                                      f"{type(e).__name__}")
            unknown = sorted(set(e) - set(POSE_KEYS))
            if unknown:
                raise ValidationError(f"{w}: unknown key {unknown[0]!r}; valid keys: "
                                      f"{', '.join(POSE_KEYS)}")
            for key in POSE_KEYS:
                if key not in e:
                    raise ValidationError(f"{w}: missing \"{key}\"")
            v = e["t"]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValidationError(f"{w}.t: must be a finite number of seconds, got {v!r}")
            if abs(v) > 1e6:
                raise ValidationError(f"{w}.t: {v:.6g} s is beyond ±1e6 s of the scene clock's origin")
            if times and not v > times[-1]:
                raise ValidationError(f"{w}.t: {v:.6g} s is not after poses[{i - 1}].t = "
                                      f"{times[-1]:.6g} s; times must be strictly increasing")
            T = C.check_rigid(e["ego_to_world"], f"{w}.ego_to_world")
            C.check_translation(T, f"{w}.ego_to_world")
            times.append(float(v))
            mats.append(T)
        return EgoTrajectory(np.asarray(times), np.stack(mats))

    @staticmethod
    def load(path: str | os.PathLike) -> EgoTrajectory:
        """Read a trajectory JSON file; a bad file is one ``FormatError`` naming it and the pose."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: file not found")
        size = path.stat().st_size
        if size > MAX_TRAJECTORY_FILE_BYTES:
            raise FormatError(f"{path}: {size} bytes, larger than a trajectory file may be "
                              f"({MAX_TRAJECTORY_FILE_BYTES >> 20} MiB)")
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise FormatError(f"{path}: not valid JSON ({' '.join(str(exc).split())[:200]})") from None
        try:
            return EgoTrajectory.from_json(obj, str(path))
        except ValidationError as exc:
            raise FormatError(str(exc)) from None

    def to_json(self) -> dict:
        """The trajectory file's content."""
        return {"poses": [{"t": float(t), "ego_to_world": p.tolist()}
                          for t, p in zip(self.times, self.ego_to_world, strict=True)]}

    def save(self, path: str | os.PathLike, *, force: bool = False) -> Path:
        """Write the trajectory JSON atomically; an existing file is replaced only with ``force``."""
        from splatnet.io.atomic import atomic_write_text

        path = Path(path)
        if path.exists() and not path.is_dir() and not force:
            raise FileExistsError(f"{path}: already exists (pass force=True to overwrite)")
        atomic_write_text(path, json.dumps(self.to_json(), allow_nan=False) + "\n")
        return path


def rig_cameras(rig: Rig, ego_to_world: np.ndarray, t: float, names: Sequence[str] | None = None,
                size: tuple[int, int] | None = None) -> Cameras:
    """The rig's cameras for an ego pose: camera ``c`` at ``ego_to_world · cam_to_ego[c]``,
    stamped with time ``t`` (so :meth:`Scene.render` draws the actors where they are then).

    Args:
        rig: the scene's rig.
        ego_to_world: ``[4, 4]`` rigid ego pose in the world frame.
        t: seconds on the scene clock.
        names: cameras to use (default: all of the rig's), in that order.
        size: ``(H, W)`` to render at, intrinsics scaled (``fx, cx`` by ``W / width``, ``fy, cy``
            by ``H / height``); default: the cameras' native size, which must then be one size.

    Returns:
        Unbatched float32 :class:`~splatnet.Cameras` ``[C]`` on the CPU with ``timestamps`` ``t``.
    """
    T = C.check_rigid(ego_to_world, "ego_to_world")
    t = _finite(t, "t")
    cams = [rig.camera(n) for n in (rig.names if names is None else names)]
    if not cams:
        raise ValidationError("cameras: expected one or more camera names")
    if size is None:
        sizes = sorted({(c.width, c.height) for c in cams})
        if len(sizes) > 1:
            raise ValidationError(f"cameras: the chosen cameras have different image sizes "
                                  f"{', '.join(f'{w}x{h}' for w, h in sizes)}; give a size or "
                                  "cameras of one size")
        (width, height), Ks = sizes[0], [c.K for c in cams]
    else:
        from splatnet._limits import check_image_size

        height, width = check_image_size(*size, what="size")
        Ks = [np.diag([width / c.width, height / c.height, 1.0]) @ c.K for c in cams]
    # The same float64 products as Scene.frame_cameras, so the log trajectory gives its cameras
    # bit for bit.
    poses = np.stack([T @ c.cam_to_ego for c in cams])
    ts = torch.full((len(cams),), t, dtype=torch.float64)
    return Cameras(torch.from_numpy(np.stack(Ks)).float(), torch.from_numpy(poses).float(), width,
                   height, timestamps=ts, names=[c.name for c in cams])


# ---------------------------------------------------------------------------------------- replay
@dataclass
class ReplayView:
    """One camera's images at one replay step (CPU tensors).

    Attributes:
        camera: the rig camera's name.
        rgb: ``[H, W, 3]`` colour in [0, 1] with the sky composited.
        alpha: ``[H, W, 1]`` accumulated opacity of the Gaussians.
        depth: ``[H, W, 1]`` expected camera-z depth in metres (0 where nothing was drawn).
    """

    camera: str
    rgb: Tensor
    alpha: Tensor
    depth: Tensor


@dataclass
class ReplayFrame:
    """What :func:`replay` yields for one keyframe of the trajectory.

    Attributes:
        index: the keyframe's index in the trajectory.
        t: its time (seconds on the scene clock).
        ego_to_world: ``[4, 4]`` float64 ego pose.
        views: one :class:`ReplayView` per chosen camera, in the order asked for.
        lidar: ``[M, 3]`` float32 simulated LiDAR points in the ego frame, or None.
    """

    index: int
    t: float
    ego_to_world: np.ndarray
    views: list[ReplayView]
    lidar: np.ndarray | None = None


def replay(scene: Scene, trajectory: EgoTrajectory, *, cameras: Sequence[str] | None = None,
           size: tuple[int, int] | None = None, lidar: LidarSensor | None = None,
           indices: Sequence[int] | None = None, backend: str = "auto") -> Iterator[ReplayFrame]:
    """Render ``scene`` from the rig on ``trajectory``, one :class:`ReplayFrame` per keyframe.

    Each keyframe's cameras (:func:`rig_cameras`) see the scene at the keyframe's time: the
    background (advanced to it when dynamic) and every actor where its track has it then. Cameras
    of different native sizes are rendered in groups of one size (or all at ``size``). With
    ``lidar`` (:class:`~splatnet.scene.lidar.LidarSensor`), each frame also holds a simulated
    sweep from the sensor on the ego at that time.

    Every keyframe must lie within the scene's time span (outside it the scene has no actor
    poses); ``indices`` picks keyframes (default: all, in order). The arguments are checked when
    this is called, before anything is rendered; frames are rendered as they are consumed.
    """
    from splatnet.scene.lidar import LidarSensor
    from splatnet.scene.scene import Scene

    if not isinstance(scene, Scene):
        raise ValidationError(f"scene: expected a splatnet.Scene, got {type(scene).__name__}")
    if not isinstance(trajectory, EgoTrajectory):
        raise ValidationError(f"trajectory: expected an EgoTrajectory, got {type(trajectory).__name__}")
    if lidar is not None and not isinstance(lidar, LidarSensor):
        raise ValidationError(f"lidar: expected a splatnet.scene.LidarSensor, got {type(lidar).__name__}")
    names = list(scene.rig.names if cameras is None else cameras)
    for n in names:
        scene.rig.camera(n)  # unknown names fail before rendering
    if not names:
        raise ValidationError("cameras: expected one or more camera names")
    lo, hi = scene.time_span
    for i, t in enumerate(trajectory.times):
        if not lo <= t <= hi:
            raise ValidationError(f"trajectory: pose {i} at t = {t:.6g} s is outside the scene's time "
                                  f"span {lo:.6g}..{hi:.6g} s (the scene has no actor poses there)")
    ids = list(range(len(trajectory))) if indices is None else [int(i) for i in indices]
    for i in ids:
        if not 0 <= i < len(trajectory):
            raise ValidationError(f"indices: {i} is not a pose of the trajectory (0..{len(trajectory) - 1})")
    if size is not None:
        from splatnet._limits import check_image_size

        size = check_image_size(*size, what="size")
    # Cameras of one size share a render call.
    if size is None:
        groups: dict[tuple[int, int], list[str]] = {}
        for n in names:
            c = scene.rig.camera(n)
            groups.setdefault((c.height, c.width), []).append(n)
        group_list = list(groups.values())
    else:
        group_list = [names]
    return _frames(scene, trajectory, ids, names, group_list, size, lidar, backend)


def _frames(scene: Scene, trajectory: EgoTrajectory, ids: list[int], names: list[str],
            groups: list[list[str]], size: tuple[int, int] | None, lidar: LidarSensor | None,
            backend: str) -> Iterator[ReplayFrame]:
    for i in ids:
        t, pose = float(trajectory.times[i]), trajectory.ego_to_world[i]
        views: dict[str, ReplayView] = {}
        for group in groups:
            cams = rig_cameras(scene.rig, pose, t, group, size)
            with torch.no_grad():
                out = scene.render(cams, backend=backend)
            for j, n in enumerate(group):
                views[n] = ReplayView(n, out.rgb[j].cpu(), out.alpha[j].cpu(), out.depth[j].cpu())
        points = None if lidar is None else lidar.sweep(scene, pose, t, backend=backend)
        yield ReplayFrame(i, t, pose.copy(), [views[n] for n in names], points)


def _finite(v: object, what: str) -> float:
    if isinstance(v, Tensor) and v.numel() == 1:
        v = v.item()
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(v)):
        raise ValidationError(f"{what}: expected a finite number, got {v!r}")
    return float(v)
