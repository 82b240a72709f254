"""``DrivingEnv``: a Gymnasium environment that drives the ego through a reconstructed
:class:`~splatnet.scene.Scene` in closed loop (docs/simulation.md).

The policy acts; the ego moves (a kinematic bicycle model, or the pose it is given); the scene's
actors move along their tracks; the rig's cameras see the scene from where the ego now is, at the
new time. Frames: the scene's world frame (metres) and clock (seconds); the ego frame is x
forward, y left, z up; cameras are OpenCV.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium import spaces

from splatnet.clip import _checks as C
from splatnet.clip.actors import interpolate_pose
from splatnet.errors import ValidationError
from splatnet.scene.lidar import LidarSensor
from splatnet.scene.scene import Scene
from splatnet.scene.trajectory import EgoTrajectory, rig_cameras
from splatnet.sim.geometry import LoggedPath, boxes_intersect, point_box_distance
from splatnet.sim.vehicle import BicycleState, Vehicle, advance, planar_pose

#: The id under which ``gymnasium.make`` finds the environment (``scene=`` is required).
ENV_ID = "splatnet/Driving-v0"
ACTION_MODES = ("bicycle", "pose")
RESET_OPTIONS = ("frame", "t", "ego_to_world", "speed")
#: Collisions are checked along each step at least every this many metres of the ego's travel
#: (so a fast ego cannot pass through a thin actor between two steps), at most 64 times a step.
COLLISION_CHECK_SPACING = 0.25
MAX_COLLISION_CHECKS = 64
#: Bound of the unbounded observation entries (finite, so Gymnasium's checks are satisfied).
_BIG = float(np.finfo(np.float32).max)
#: Largest coordinate a pose may have (as a clip's: float32 resolves 6 cm there).
_MAX_COORD = 1e6


@dataclass(frozen=True)
class Reward:
    """The default reward of a step (users will bring their own; every term is in ``info``).

    ``reward = progress · Δs − off_path · max(0, d − path_tolerance) − collision · [collided]``

    where ``Δs`` is the step's progress along the logged path (metres: the change in the arc
    length of the point of the path nearest the ego origin; negative when going backwards) and
    ``d`` the ego origin's distance to the path after the step (metres).

    Attributes:
        progress: reward per metre of progress.
        off_path: penalty per metre beyond ``path_tolerance``, each step.
        path_tolerance: metres from the logged path that cost nothing.
        collision: penalty of the step that collides (the episode then terminates).
    """

    progress: float = 1.0
    off_path: float = 0.2
    path_tolerance: float = 1.0
    collision: float = 10.0

    def __post_init__(self) -> None:
        for name in ("progress", "off_path", "path_tolerance", "collision"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValidationError(f"reward.{name}: expected a finite number, got {v!r}")

    def terms(self, progress: float, distance: float, collided: bool) -> dict[str, float]:
        """The three terms (they sum to the reward)."""
        return {"progress": self.progress * progress,
                "off_path": -self.off_path * max(0.0, distance - self.path_tolerance),
                "collision": -self.collision if collided else 0.0}


class DrivingEnv(gymnasium.Env):
    """Closed-loop driving in a reconstructed scene (docs/simulation.md has the whole contract).

    Args:
        scene: a :class:`~splatnet.scene.Scene` or the path of a ``.scene`` file (what
            ``gymnasium.make`` needs: it copies its arguments); the scene carries the rig and the
            logged ego path (a bare set of Gaussians has neither) and needs two frames or more.
        cameras: rig camera names to observe, in this order (default: all of the rig's).
        size: ``(H, W)`` of the observed images (intrinsics scaled); default: the cameras'
            native size, which must then be one size.
        action_mode: ``"bicycle"``: the action is ``(acceleration m/s², steering rad)`` through
            the kinematic bicycle model of :mod:`splatnet.sim.vehicle`, clipped to the
            vehicle's limits; ``"pose"``: the action is the next ``[4, 4]`` ego-to-world pose.
        dt: seconds a step advances (default: the scene's median frame period).
        vehicle: the ego's size and limits (:class:`~splatnet.sim.vehicle.Vehicle`).
        reward: the reward's weights (:class:`Reward`).
        depth: also observe each camera's expected depth (metres, camera z).
        lidar: also observe a simulated sweep of this sensor (points in the ego frame).
        start_noise: standard deviations ``(lateral m, yaw rad, speed m/s)`` of a random change
            to the start pose and speed, drawn from the environment's seeded generator at each
            reset (default: none, every reset starts on the log).
        render_mode: ``None`` or ``"rgb_array"`` (:meth:`render`: the observed cameras side by
            side).
        backend: the renderer backend (:func:`splatnet.render`).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, scene: Scene | str | os.PathLike, *, cameras: Sequence[str] | None = None,
                 size: tuple[int, int] | None = None, action_mode: str = "bicycle",
                 dt: float | None = None, vehicle: Vehicle | None = None,
                 reward: Reward | None = None, depth: bool = False,
                 lidar: LidarSensor | None = None,
                 start_noise: Sequence[float] = (0.0, 0.0, 0.0),
                 render_mode: str | None = None, backend: str = "auto") -> None:
        if isinstance(scene, (str, os.PathLike)):
            scene = Scene.load(scene)
        if not isinstance(scene, Scene):
            raise ValidationError(
                f"DrivingEnv: scene: expected a splatnet.Scene, got {type(scene).__name__}; the "
                "environment needs the scene's rig (its cameras on the ego) and logged ego path, "
                "which a set of Gaussians or a PLY file does not have: reconstruct one with "
                "`splatnet reconstruct CLIP -o NAME.scene` or splatnet.reconstruct_scene")
        if scene.num_frames < 2:
            raise ValidationError(f"DrivingEnv: the scene has {scene.num_frames} frame; it needs two "
                                  "or more (a time span to drive in)")
        self.scene = scene
        self.camera_names = _camera_names(scene, cameras)
        self.size = _image_size(scene, self.camera_names, size)
        self.action_mode = C.check_choice(action_mode, ACTION_MODES, "DrivingEnv: action_mode")
        self.dt = _step_period(scene, dt)
        self.vehicle = Vehicle() if vehicle is None else vehicle
        if not isinstance(self.vehicle, Vehicle):
            raise ValidationError(f"DrivingEnv: vehicle: expected a splatnet.sim.Vehicle, got "
                                  f"{type(vehicle).__name__}")
        self.reward_weights = Reward() if reward is None else reward
        if not isinstance(self.reward_weights, Reward):
            raise ValidationError(f"DrivingEnv: reward: expected a splatnet.sim.Reward, got "
                                  f"{type(reward).__name__}")
        if not isinstance(depth, bool):
            raise ValidationError(f"DrivingEnv: depth: expected True or False, got {depth!r}")
        self.depth = depth
        if lidar is not None and not isinstance(lidar, LidarSensor):
            raise ValidationError(f"DrivingEnv: lidar: expected a splatnet.scene.lidar.LidarSensor "
                                  f"or None, got {type(lidar).__name__}")
        self.lidar = lidar
        self.start_noise = _start_noise(start_noise)
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValidationError(f"DrivingEnv: render_mode: expected None or 'rgb_array', got "
                                  f"{render_mode!r}")
        self.render_mode = render_mode
        self.backend = backend
        self.metadata = {**self.metadata, "render_fps": 1.0 / self.dt}

        self.log = EgoTrajectory.from_scene(scene)
        self.path = LoggedPath(scene.ego_to_world[:, :3, 3])
        self._actors = list(scene.actors.values())
        self._actor_radius = np.array([0.5 * float(np.linalg.norm(a.size)) for a in self._actors])
        self.action_space = self._action_space()
        self.observation_space = self._observation_space()
        #: Wall time of the last step's parts, seconds: "dynamics" (the vehicle model, collision
        #: checks, the path, reward and info) and "observation" (rendering, depth, LiDAR).
        self.step_seconds: dict[str, float] = {}
        self._pose: np.ndarray | None = None  # no episode yet
        self._ended: str | None = None

    # ------------------------------------------------------------------ spaces
    def _action_space(self) -> spaces.Box:
        if self.action_mode == "pose":
            return spaces.Box(-_MAX_COORD, _MAX_COORD, (4, 4), np.float64)
        return spaces.Box(self.vehicle.action_low.astype(np.float32),
                          self.vehicle.action_high.astype(np.float32), dtype=np.float32)

    def _observation_space(self) -> spaces.Dict:
        (h, w), c = self.size, len(self.camera_names)
        obs = {"rgb": spaces.Box(0, 255, (c, h, w, 3), np.uint8),
               "ego": spaces.Box(-_BIG, _BIG, (4,), np.float32),
               "ego_to_world": spaces.Box(-_MAX_COORD, _MAX_COORD, (4, 4), np.float64)}
        if self.depth:
            obs["depth"] = spaces.Box(0.0, _BIG, (c, h, w), np.float32)
        if self.lidar is not None:
            reach = self.lidar.max_range + float(np.linalg.norm(self.lidar.sensor_to_ego[:3, 3])) + 1.0
            obs["lidar"] = spaces.Sequence(spaces.Box(-reach, reach, (3,), np.float32), stack=True)
        return spaces.Dict(obs)

    # ------------------------------------------------------------------ episode
    @property
    def time(self) -> float:
        """The current time, seconds on the scene clock."""
        self._require_episode("time")
        return self._time_of(self._k)

    def _time_of(self, k: int) -> float:
        """The time of step ``k``: ``t0 + k · dt``, snapped onto a frame time within 1 ns of it
        (rounding must not put a step just past the last frame, where actors end)."""
        t = self._t0 + k * self.dt
        times = self.scene.frame_times
        j = min(int(np.searchsorted(times, t)), len(times) - 1)
        for i in (j - 1, j):
            if i >= 0 and abs(times[i] - t) <= 1e-9:
                return float(times[i])
        return t

    @property
    def ego_to_world(self) -> np.ndarray:
        """``[4, 4]`` float64 current ego pose in the world frame (a copy)."""
        self._require_episode("ego_to_world")
        return self._pose.copy()

    @property
    def cameras(self):
        """The :class:`~splatnet.Cameras` of the current observation (rig on the ego, at its time)."""
        self._require_episode("cameras")
        return self._cameras

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode on the log.

        Options (all optional): ``"frame"`` (a logged frame to start at) or ``"t"`` (seconds on
        the scene clock; the logged pose interpolated there), default the first frame;
        ``"ego_to_world"`` (a ``[4, 4]`` rigid start pose instead of the logged one);
        ``"speed"`` (m/s, default the log's speed there). ``start_noise`` then perturbs them.
        """
        super().reset(seed=seed)
        t0, pose, speed = self._start(options)
        lateral, yaw, dv = (self.np_random.normal(0.0, s) if s > 0 else 0.0 for s in self.start_noise)
        if lateral or yaw:
            pose = pose @ planar_pose(0.0, lateral, yaw)
        speed = float(np.clip(speed + dv, 0.0, self.vehicle.max_speed))
        self._t0, self._k, self._pose, self._ended = t0, 0, pose, None
        # The drive plane: the start pose moved to the rear axle; the bicycle state lives in it.
        self._plane = pose @ planar_pose(self.vehicle.rear_axle_x, 0.0, 0.0)
        self._state = BicycleState(0.0, 0.0, 0.0, speed)
        self._ego = np.array([speed, 0.0, 0.0, 0.0])  # speed, acceleration, steering, yaw rate
        hits = self._collisions_at([(t0, pose)])
        _, self._progress = self.path.project(pose[:3, 3])
        obs = self._observe()
        info = self._info(hits, {"progress": 0.0, "off_path": 0.0, "collision": 0.0}, None)
        return obs, info

    def step(self, action):
        """Advance by ``dt``: ``(observation, reward, terminated, truncated, info)``.

        ``terminated``: the ego's box intersects an actor's (``info["collision"]``);
        ``truncated``: the next step would leave the scene's time span. A step after either
        (or before :meth:`reset`) is an error; so is a non-finite action, which changes nothing.
        """
        start = time.perf_counter()
        self._require_episode("step()")
        if self._ended is not None:
            raise ValidationError(f"DrivingEnv: step() after the episode ended ({self._ended}); call "
                                  "reset() to start a new one")
        t_prev, pose_prev, state_prev = self.time, self._pose, self._state
        t = self._time_of(self._k + 1)
        # Everything is computed before any of the episode's state changes: a bad action or pose
        # leaves the episode as it was.
        if self.action_mode == "pose":
            pose = _pose_action(action)
            travel = float(np.linalg.norm(pose[:3, 3] - pose_prev[:3, 3]))
            applied, state = None, state_prev
            ego = self._ego_from_poses(pose_prev, pose)

            def pose_at(f: float) -> np.ndarray:
                return interpolate_pose(pose_prev, pose, f)
        else:
            accel, steer = self.vehicle.clip(_bicycle_action(action))
            applied = [float(accel), float(steer)]
            state = advance(state_prev, accel, steer, self.dt, self.vehicle)
            to_ego = planar_pose(-self.vehicle.rear_axle_x, 0.0, 0.0)

            def pose_at(f: float) -> np.ndarray:
                s = state if f == 1.0 else advance(state_prev, accel, steer, f * self.dt, self.vehicle)
                return self._plane @ planar_pose(s.x, s.y, s.yaw) @ to_ego

            pose = pose_at(1.0)
            C.check_translation(pose, "DrivingEnv.step: the ego's new pose")
            travel = math.hypot(state.x - state_prev.x, state.y - state_prev.y)
            yaw_rate = state.speed * math.tan(steer) / self.vehicle.wheelbase
            ego = np.array([state.speed, (state.speed - state_prev.speed) / self.dt, steer, yaw_rate])
        n = min(MAX_COLLISION_CHECKS, max(1, math.ceil(travel / COLLISION_CHECK_SPACING)))
        checks = [(t_prev + (i / n) * (t - t_prev), pose if i == n else pose_at(i / n))
                  for i in range(1, n + 1)]
        hits = self._collisions_at(checks, travel)
        distance, progress = self.path.project(pose[:3, 3])
        terms = self.reward_weights.terms(progress - self._progress, distance, bool(hits))
        self._k, self._pose, self._state, self._ego, self._progress = self._k + 1, pose, state, ego, progress
        info = self._info(hits, terms, applied)
        mid = time.perf_counter()
        obs = self._observe()
        self.step_seconds = {"dynamics": mid - start, "observation": time.perf_counter() - mid}
        terminated = bool(hits)
        truncated = t + self.dt > self.scene.time_span[1] + 1e-9
        if terminated:
            self._ended = f"terminated: collision with {', '.join(map(repr, hits))} at t = {t:.6g} s"
        elif truncated:
            self._ended = f"truncated: the scene's time span ends at {self.scene.time_span[1]:.6g} s"
        return obs, float(sum(terms.values())), terminated, truncated, info

    def render(self):
        """``render_mode="rgb_array"``: the current observation's cameras side by side, uint8
        ``[H, C·W, 3]``; ``None`` without a render mode."""
        if self.render_mode is None:
            return None
        self._require_episode("render()")
        return np.concatenate(list(self._rgb), axis=1)

    # ------------------------------------------------------------------ internals
    def _require_episode(self, what: str) -> None:
        if self._pose is None:
            raise ValidationError(f"DrivingEnv: {what} before reset(); call reset() to start an "
                                  "episode")

    def _start(self, options: dict[str, Any] | None) -> tuple[float, np.ndarray, float]:
        opts = {} if options is None else options
        if not isinstance(opts, dict):
            raise ValidationError(f"DrivingEnv.reset: options: expected a dict, got "
                                  f"{type(opts).__name__}")
        unknown = sorted(set(opts) - set(RESET_OPTIONS), key=str)
        if unknown:
            raise ValidationError(f"DrivingEnv.reset: unknown option {unknown[0]!r}; options: "
                                  f"{', '.join(RESET_OPTIONS)}")
        lo, hi = self.scene.time_span
        if "frame" in opts and "t" in opts:
            raise ValidationError("DrivingEnv.reset: give \"frame\" or \"t\", not both")
        if "frame" in opts:
            f = opts["frame"]
            if isinstance(f, bool) or not isinstance(f, (int, np.integer)) \
                    or not 0 <= f < self.scene.num_frames:
                raise ValidationError(f"DrivingEnv.reset: frame: expected a frame index in "
                                      f"0..{self.scene.num_frames - 1}, got {f!r}")
            t = float(self.scene.frame_times[f])
        elif "t" in opts:
            t = _number(opts["t"], "DrivingEnv.reset: t")
            if not lo <= t <= hi:
                raise ValidationError(f"DrivingEnv.reset: t = {t:.6g} s is outside the scene's time "
                                      f"span {lo:.6g}..{hi:.6g} s")
        else:
            t = lo
        if t + self.dt > hi + 1e-9:
            raise ValidationError(f"DrivingEnv.reset: starting at t = {t:.6g} s leaves no step of "
                                  f"{self.dt:.6g} s before the scene's end ({hi:.6g} s)")
        if "ego_to_world" in opts:
            pose = C.check_rigid(opts["ego_to_world"], "DrivingEnv.reset: ego_to_world")
            C.check_translation(pose, "DrivingEnv.reset: ego_to_world")
        else:
            pose = self.log.pose_at(t)
        if "speed" in opts:
            speed = _number(opts["speed"], "DrivingEnv.reset: speed")
            if not 0 <= speed <= self.vehicle.max_speed:
                raise ValidationError(f"DrivingEnv.reset: speed: expected 0 to {self.vehicle.max_speed:g} "
                                      f"m/s (the vehicle's max_speed), got {speed:g}")
        else:
            speed = self._logged_speed(t)
        return t, pose, speed

    def _logged_speed(self, t: float) -> float:
        """The log's forward speed (m/s) at ``t``: the frame segment's displacement over its time,
        along the ego's x axis there, within the vehicle's speed range."""
        times, poses = self.scene.frame_times, self.scene.ego_to_world
        j = min(max(int(np.searchsorted(times, t, side="right")) - 1, 0), len(times) - 2)
        v = (poses[j + 1, :3, 3] - poses[j, :3, 3]) / (times[j + 1] - times[j])
        return float(np.clip(v @ self.log.pose_at(t)[:3, 0], 0.0, self.vehicle.max_speed))

    def _ego_from_poses(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Pose mode's ego state from two consecutive poses: forward speed, its change, the
        steering angle a bicycle would need for the turn, and the yaw rate."""
        speed = float((b[:3, 3] - a[:3, 3]) @ b[:3, 0]) / self.dt
        rel = a[:3, :3].T @ b[:3, :3]
        yaw_rate = math.atan2(rel[1, 0], rel[0, 0]) / self.dt
        steer = math.atan(self.vehicle.wheelbase * yaw_rate / speed) if abs(speed) > 1e-6 else 0.0
        return np.array([speed, (speed - self._ego[0]) / self.dt, steer, yaw_rate])

    def _collisions_at(self, checks: list[tuple[float, np.ndarray]], travel: float = 0.0) -> list[str]:
        """Ids of the actors the ego's box intersects at the first of ``checks`` (``(t, ego
        pose)`` in time order) where it intersects any; empty when it never does."""
        v = self.vehicle
        box = v.box_to_ego()
        t0, t1 = checks[0][0], checks[-1][0]
        centre = (checks[-1][1] @ box)[:3, 3]
        ego_radius = 0.5 * float(np.linalg.norm(v.size))
        near = []
        for a, radius in zip(self._actors, self._actor_radius):
            lo, hi = a.span
            if hi < t0 or lo > t1:
                continue  # absent throughout
            # Cull by bounding spheres, with room for the ego's and the actor's motion.
            ends = [a.pose_at(max(t0, lo))[:3, 3], a.pose_at(min(t1, hi))[:3, 3]]
            moved = float(np.linalg.norm(ends[1] - ends[0]))
            gap = min(float(np.linalg.norm(e - centre)) for e in ends)
            if gap <= ego_radius + radius + travel + moved + 2.0:
                near.append(a)
        for t, ego in checks:
            ego_box = ego @ box
            hits = [a.id for a in near if (p := a.pose_at(t)) is not None
                    and boxes_intersect(ego_box, v.size, p, a.size)]
            if hits:
                return hits
        return []

    def _observe(self) -> dict[str, np.ndarray]:
        t = self.time
        cams = rig_cameras(self.scene.rig, self._pose, t, self.camera_names, self.size)
        with torch.no_grad():
            # uint8 images: a sky left out where under 1/512 of it shows through changes no
            # pixel by more than one step (Scene.render).
            out = self.scene.render(cams, backend=self.backend, sky_min_transmittance=1 / 512)
        self._cameras = cams
        self._rgb = (out.rgb.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).cpu().numpy()
        obs = {"rgb": self._rgb.copy(), "ego": self._ego.astype(np.float32),
               "ego_to_world": self._pose.copy()}
        if self.depth:
            obs["depth"] = out.depth[..., 0].float().cpu().numpy()
        if self.lidar is not None:
            obs["lidar"] = self.lidar.sweep(self.scene, self._pose, t, backend=self.backend)
        return obs

    def _info(self, hits: list[str], terms: dict[str, float], applied) -> dict[str, Any]:
        t = self.time
        distance, progress = self.path.project(self._pose[:3, 3])
        centre = (self._pose @ self.vehicle.box_to_ego())[:3, 3]
        nearest = None
        for a in self._actors:
            p = a.pose_at(t)
            if p is None:
                continue
            d = point_box_distance(centre, p, a.size)
            if nearest is None or d < nearest["distance"]:
                nearest = {"id": a.id, "label": a.label, "distance": d}
        return {"t": t, "step": self._k, "distance_to_path": distance, "progress": progress,
                "nearest_actor": nearest, "collision": bool(hits), "collided_with": list(hits),
                "reward_terms": terms, "action": applied}


# ---------------------------------------------------------------------------------------- checks
def _camera_names(scene: Scene, cameras: Sequence[str] | None) -> list[str]:
    if cameras is None:
        return scene.rig.names
    if isinstance(cameras, str):
        cameras = [cameras]
    names = list(cameras)
    if not names:
        raise ValidationError("DrivingEnv: cameras: expected one or more of the rig's cameras "
                              f"({', '.join(scene.rig.names)})")
    for n in names:
        if n not in scene.rig.names:
            raise ValidationError(f"DrivingEnv: cameras: the scene's rig has no camera {n!r} "
                                  f"(cameras: {', '.join(scene.rig.names)})")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValidationError(f"DrivingEnv: cameras: {', '.join(twice)} named twice")
    return names


def _image_size(scene: Scene, names: list[str], size) -> tuple[int, int]:
    from splatnet._limits import check_image_size

    if size is None:
        sizes = sorted({(scene.rig.camera(n).height, scene.rig.camera(n).width) for n in names})
        if len(sizes) > 1:
            raise ValidationError(f"DrivingEnv: the cameras have different native sizes "
                                  f"{', '.join(f'{w}x{h}' for h, w in sizes)}; give size=(H, W)")
        return sizes[0]
    try:
        h, w = size
    except (TypeError, ValueError):
        raise ValidationError(f"DrivingEnv: size: expected (height, width) in pixels, got {size!r}") \
            from None
    for v in (h, w):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValidationError(f"DrivingEnv: size: expected (height, width), positive whole "
                                  f"pixels, got {size!r}")
    return check_image_size(int(h), int(w), what="DrivingEnv: size")


def _step_period(scene: Scene, dt: float | None) -> float:
    span = scene.time_span[1] - scene.time_span[0]
    if dt is None:
        return float(np.median(np.diff(scene.frame_times)))
    dt = _number(dt, "DrivingEnv: dt")
    if not 0 < dt <= span:
        raise ValidationError(f"DrivingEnv: dt: expected seconds in (0, {span:.6g}] (the scene's time "
                              f"span), got {dt:g}")
    return dt


def _start_noise(value) -> tuple[float, float, float]:
    try:
        v = [float(x) for x in value]
    except (TypeError, ValueError):
        raise ValidationError(f"DrivingEnv: start_noise: expected (lateral m, yaw rad, speed m/s), "
                              f"got {value!r}") from None
    if len(v) != 3 or not all(math.isfinite(x) and x >= 0 for x in v):
        raise ValidationError(f"DrivingEnv: start_noise: expected three finite standard deviations "
                              f">= 0 (lateral m, yaw rad, speed m/s), got {value!r}")
    return v[0], v[1], v[2]


def _number(v: object, where: str) -> float:
    if isinstance(v, np.ndarray) and v.size == 1:
        v = v.item()
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(v)):
        raise ValidationError(f"{where}: expected a finite number, got {v!r}")
    return float(v)


def _as_array(action: object, where: str) -> np.ndarray:
    if isinstance(action, torch.Tensor):
        action = action.detach().cpu().numpy()
    try:
        a = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError(f"{where}: expected numbers, got {type(action).__name__}") from None
    return a


def _bicycle_action(action: object) -> np.ndarray:
    a = _as_array(action, "DrivingEnv.step: action")
    if a.shape != (2,):
        raise ValidationError(f"DrivingEnv.step: action: expected (acceleration m/s^2, steering rad), "
                              f"shape (2,), got shape {list(a.shape)}")
    if not np.all(np.isfinite(a)):
        raise ValidationError(f"DrivingEnv.step: action: non-finite value (NaN or inf) "
                              f"{a.tolist()}; the policy's output is broken")
    return a


def _pose_action(action: object) -> np.ndarray:
    a = _as_array(action, "DrivingEnv.step: action")
    if a.shape == (4, 4) and not np.all(np.isfinite(a)):
        raise ValidationError("DrivingEnv.step: action: non-finite value (NaN or inf) in the pose; "
                              "the planner's output is broken")
    T = C.check_rigid(a, "DrivingEnv.step: action (the next ego-to-world pose)")
    C.check_translation(T, "DrivingEnv.step: action (the next ego-to-world pose)")
    return T
