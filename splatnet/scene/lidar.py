"""Simulated LiDAR: a spinning sensor's sweep of a scene, ray-cast as rendered depth.

A :class:`LidarSensor` has a beam pattern (elevations × azimuths, in its own frame: x forward, y
left, z up, as the ego's) and a mounting ``sensor_to_ego``. A sweep at time ``t`` renders the
scene (background and actors at ``t``, no sky) from the six faces of a cube map at the sensor
(90° pinhole cameras looking along ±x, ±y, ±z; only the faces some beam points into), takes for
each beam the face its direction points into most (the largest ``|d_i|``), samples that face's
expected depth along the beam and turns camera z into range (``range = z / d_z`` for the unit
direction ``d`` in the face camera). Rays whose alpha is below 0.5 (they meet nothing opaque, or
only the sky) or whose range is beyond ``max_range`` are dropped.

Sampling: bilinear in inverse depth (exact for a plane, whose ``1/z`` is affine in the image)
where the four neighbouring pixels are covered (alpha ≥ 0.5) and agree within
:data:`EDGE_RATIO`; the nearest pixel elsewhere, so no point is invented halfway between an
object and what lies behind it. The whole sweep is one instant (no rolling shutter, no motion
during the turn), and every beam that meets a surface returns it (no intensity, dropout or noise).

Accuracy (docs/scenes.md, tests/scene/test_lidar.py): a surface facing the face camera is measured
to float32 rounding; one seen at grazing incidence (the road far ahead) reads short by about a
pixel's footprint along it, since a pixel's expected depth weights the nearer Gaussians more
(about 1 % at 10 m and 3 % at 20 m for a road seen from 1.8 m at the default face size).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from splatnet.cameras import Cameras
from splatnet.clip import _checks as C
from splatnet.errors import ValidationError
from splatnet.scene.track import read_only

if TYPE_CHECKING:
    from splatnet.scene.scene import Scene

#: Neighbouring depths further apart than this ratio are a depth edge: sample the nearest pixel.
EDGE_RATIO = 1.1
#: A ray counts as a return where the rendered alpha is at least this (as depth previews use).
MIN_ALPHA = 0.5
#: Largest beam pattern (rays per sweep) and cube-face side (pixels).
MAX_RAYS = 1 << 22
MAX_FACE_SIZE = 2048
MIN_FACE_SIZE = 16

#: Default mounting: on the roof, 1.8 m above the ego origin, axes as the ego's.
ROOF_HEIGHT = 1.8


def _roof() -> np.ndarray:
    T = np.eye(4)
    T[2, 3] = ROOF_HEIGHT
    return T


def _face_rotations() -> np.ndarray:
    """``[6, 3, 3]`` camera-to-sensor rotations (OpenCV cameras) of the cube faces +x, -x, +y,
    -y, +z, -z: face ``2k + s`` looks along ``±e_k``."""
    out = []
    for k in range(3):
        for sign in (1.0, -1.0):
            z = np.zeros(3)
            z[k] = sign
            # Image "down" is -z for the side faces; for the top and bottom faces any
            # perpendicular will do (here ±x).
            y = np.array([0.0, 0.0, -1.0]) if k < 2 else np.array([sign, 0.0, 0.0])
            out.append(np.stack([np.cross(y, z), y, z], axis=1))
    return np.stack(out)


_FACES = _face_rotations()


@dataclass(frozen=True, eq=False)
class LidarSensor:
    """A spinning LiDAR on the ego (see the module docstring).

    Attributes:
        elevations: ``[B]`` beam elevations in radians (up positive), within ±π/2.
        azimuths: ``[A]`` firing azimuths in radians, counter-clockwise from the sensor's +x
            (forward) about +z; every beam fires at every azimuth.
        sensor_to_ego: ``[4, 4]`` rigid sensor-to-ego pose (default: axes as the ego's, 1.8 m
            above its origin; ego origins differ between datasets, so set it for yours).
        max_range: metres; returns beyond it are dropped.
        face_size: cube-face side in pixels (90° field of view), 16 to 2048; default: two pixels
            per finest angular step of the pattern at the face centre (four at its edges).
    """

    elevations: np.ndarray
    azimuths: np.ndarray
    sensor_to_ego: np.ndarray = field(default_factory=_roof)
    max_range: float = 100.0
    face_size: int | None = None

    def __post_init__(self) -> None:
        el = _angles(self.elevations, "lidar elevations")
        az = _angles(self.azimuths, "lidar azimuths")
        if np.any(np.abs(el) > math.pi / 2 + 1e-12):
            raise ValidationError(f"lidar elevations: must lie within ±90 degrees, got "
                                  f"{math.degrees(float(np.abs(el).max())):.6g}")
        if len(el) * len(az) > MAX_RAYS:
            raise ValidationError(f"lidar: {len(el)} beams x {len(az)} azimuths = {len(el) * len(az)} "
                                  f"rays, at most {MAX_RAYS}")
        T = C.check_rigid(self.sensor_to_ego, "lidar sensor_to_ego")
        C.check_translation(T, "lidar sensor_to_ego")
        r = self.max_range
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r <= 1e4:
            raise ValidationError(f"lidar max_range: expected metres in (0, 10000], got {r!r}")
        size = self.face_size
        if size is None:
            size = _default_face_size(el, az)
        elif isinstance(size, bool) or not isinstance(size, (int, np.integer)) \
                or not MIN_FACE_SIZE <= size <= MAX_FACE_SIZE:
            raise ValidationError(f"lidar face_size: expected {MIN_FACE_SIZE} to {MAX_FACE_SIZE} "
                                  f"pixels, got {size!r}")
        object.__setattr__(self, "elevations", read_only(el))
        object.__setattr__(self, "azimuths", read_only(az))
        object.__setattr__(self, "sensor_to_ego", read_only(T))
        object.__setattr__(self, "max_range", float(r))
        object.__setattr__(self, "face_size", int(size))

    @staticmethod
    def uniform(beams: int = 32, fov_deg: tuple[float, float] = (-25.0, 15.0), azimuths: int = 1024,
                *, position: Sequence[float] = (0.0, 0.0, ROOF_HEIGHT), max_range: float = 100.0,
                face_size: int | None = None) -> LidarSensor:
        """A sensor with ``beams`` elevations evenly spaced over ``fov_deg`` (degrees, lowest and
        highest beam, both included; one beam: the lowest) and ``azimuths`` firing directions
        evenly spaced over the full turn from straight ahead, at ``position`` (metres, ego frame)
        with the ego's axes."""
        for name, v, hi in (("beams", beams, 4096), ("azimuths", azimuths, 1 << 16)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= hi:
                raise ValidationError(f"lidar {name}: expected 1 to {hi}, got {v!r}")
        lo, up = (float(x) for x in fov_deg)
        if not (math.isfinite(lo) and math.isfinite(up) and -90 <= lo <= up <= 90):
            raise ValidationError(f"lidar fov: expected LOW,HIGH degrees with -90 <= LOW <= HIGH "
                                  f"<= 90, got {lo:g},{up:g}")
        pos = np.asarray(position, dtype=np.float64)
        if pos.shape != (3,) or not np.all(np.isfinite(pos)):
            raise ValidationError(f"lidar position: expected X,Y,Z metres, got {list(position)}")
        T = np.eye(4)
        T[:3, 3] = pos
        return LidarSensor(np.radians(np.linspace(lo, up, int(beams))),
                           2 * math.pi * np.arange(int(azimuths)) / int(azimuths), T, max_range,
                           face_size)

    @property
    def num_rays(self) -> int:
        return int(len(self.elevations) * len(self.azimuths))

    def directions(self) -> np.ndarray:
        """``[B · A, 3]`` float64 unit beam directions in the sensor frame, beam-major (beam
        ``b`` at azimuth ``a`` is row ``b · A + a``)."""
        el, az = np.meshgrid(self.elevations, self.azimuths, indexing="ij")
        return np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)],
                        axis=-1).reshape(-1, 3)

    def to_json(self) -> dict:
        """A description for index files (angles in degrees)."""
        return {"elevations_deg": np.degrees(self.elevations).tolist(),
                "azimuths": len(self.azimuths),
                "azimuths_deg": np.degrees(self.azimuths).tolist(),
                "sensor_to_ego": self.sensor_to_ego.tolist(), "max_range": self.max_range,
                "face_size": self.face_size, "frame": "ego"}

    # ------------------------------------------------------------------ sweep
    def sweep(self, scene: Scene, ego_to_world: np.ndarray, t: float, *,
              backend: str = "auto") -> np.ndarray:
        """The returns of one sweep from the ego at ``ego_to_world`` at time ``t`` (seconds on
        the scene clock): ``[M, 3]`` float32 points in the **ego frame**, beam-major, rays without
        a return left out."""
        ego = C.check_rigid(ego_to_world, "ego_to_world")
        t = float(t)
        if not math.isfinite(t):
            raise ValidationError(f"t: expected a finite time in seconds, got {t!r}")
        d = self.directions()  # [R, 3] sensor frame
        axis = np.argmax(np.abs(d), axis=1)
        face = 2 * axis + (d[np.arange(len(d)), axis] < 0)  # [R]
        used = np.unique(face)
        S = self.face_size
        f = S / 2.0
        K = np.array([[f, 0.0, f], [0.0, f, f], [0.0, 0.0, 1.0]])
        poses = np.empty((len(used), 4, 4))
        for i, k in enumerate(used):
            R = np.eye(4)
            R[:3, :3] = _FACES[k]
            poses[i] = ego @ self.sensor_to_ego @ R
        cams = Cameras(torch.from_numpy(np.repeat(K[None], len(used), 0)).float(),
                       torch.from_numpy(poses).float(), S, S,
                       timestamps=torch.full((len(used),), t, dtype=torch.float64))
        with torch.no_grad():
            out = scene.render(cams, backend=backend,
                               background=torch.zeros(3, dtype=scene.background.dtype,
                                                      device=scene.device))
        depth = out.depth[..., 0].double().cpu().numpy()  # [F, S, S]
        alpha = out.alpha[..., 0].double().cpu().numpy()
        slot = np.searchsorted(used, face)  # each ray's render
        dc = np.einsum("rji,rj->ri", _FACES[face], d)  # direction in its face camera
        u = f * dc[:, 0] / dc[:, 2] + f  # pixel coordinates (pixel centres at +0.5)
        v = f * dc[:, 1] / dc[:, 2] + f
        z, ok = _sample(depth, alpha, slot, u, v)
        rng = z / dc[:, 2]
        keep = ok & (rng > 0) & (rng <= self.max_range)
        p = d[keep] * rng[keep, None]
        p = p @ self.sensor_to_ego[:3, :3].T + self.sensor_to_ego[:3, 3]
        return p.astype(np.float32)


def _sample(depth: np.ndarray, alpha: np.ndarray, slot: np.ndarray, u: np.ndarray,
            v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Camera z at continuous pixel coordinates ``(u, v)`` of image ``slot`` and whether it is a
    return (see the module docstring)."""
    S = depth.shape[-1]
    # Nearest pixel: the one that contains (u, v).
    ni = np.clip(np.floor(u).astype(np.int64), 0, S - 1)
    nj = np.clip(np.floor(v).astype(np.int64), 0, S - 1)
    z_near = depth[slot, nj, ni]
    ok = (alpha[slot, nj, ni] >= MIN_ALPHA) & (z_near > 0)
    # Bilinear in inverse depth between the four pixel centres around (u, v).
    x, y = np.clip(u - 0.5, 0, S - 1), np.clip(v - 0.5, 0, S - 1)
    i0 = np.clip(np.floor(x).astype(np.int64), 0, S - 2)
    j0 = np.clip(np.floor(y).astype(np.int64), 0, S - 2)
    wx, wy = x - i0, y - j0
    zs = np.stack([depth[slot, j0, i0], depth[slot, j0, i0 + 1], depth[slot, j0 + 1, i0],
                   depth[slot, j0 + 1, i0 + 1]])  # [4, R]
    al = np.stack([alpha[slot, j0, i0], alpha[slot, j0, i0 + 1], alpha[slot, j0 + 1, i0],
                   alpha[slot, j0 + 1, i0 + 1]])
    smooth = np.all(al >= MIN_ALPHA, axis=0) & np.all(zs > 0, axis=0)
    smooth &= zs.max(axis=0) <= EDGE_RATIO * np.where(smooth, zs.min(axis=0), np.inf)
    w = np.stack([(1 - wx) * (1 - wy), wx * (1 - wy), (1 - wx) * wy, wx * wy])
    with np.errstate(divide="ignore"):
        inv = (w / np.where(zs > 0, zs, 1.0)).sum(axis=0)
    z = np.where(smooth, 1.0 / np.where(smooth, inv, 1.0), z_near)
    return z, ok


def _angles(value: object, where: str) -> np.ndarray:
    a = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)
    if a.dtype.kind not in "iuf" or a.ndim != 1 or len(a) == 0:
        raise ValidationError(f"{where}: expected a non-empty 1-D array of angles in radians, got "
                              f"{a.dtype} {list(a.shape)}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValidationError(f"{where}: non-finite angle (NaN or inf)")
    return a


def _default_face_size(el: np.ndarray, az: np.ndarray) -> int:
    """Two pixels (a pixel is 2 / S rad at a face's centre) per finest angular step of the pattern.

    Finer faces cost render time; coarser ones bias ranges on surfaces seen at grazing incidence
    (a road far ahead): a pixel's expected depth averages the Gaussians over its footprint, front
    ones weighted more, which pulls the range towards the sensor by about one footprint.
    """
    steps = []
    e = np.unique(el)
    if len(e) > 1:
        steps.append(float(np.diff(e).min()))
    a = np.unique(np.mod(az, 2 * math.pi))
    if len(a) > 1:
        steps.append(float(min(np.diff(a).min(), a[0] + 2 * math.pi - a[-1])))
    if not steps or min(steps) <= 0:
        return MIN_FACE_SIZE
    return int(min(MAX_FACE_SIZE, max(MIN_FACE_SIZE, math.ceil(4.0 / min(steps)))))
