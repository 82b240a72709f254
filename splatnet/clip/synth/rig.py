"""The surround camera rig, extra target cameras and the roof LiDAR's beam pattern.

Ego frame: x forward, y left, z up, origin on the ground below the vehicle's centre. Cameras use
the OpenCV frame (+x right, +y down, +z forward) as ``docs/clip-format.md`` requires.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_SECTORS = ["front", "front_left", "left", "back_left", "back", "back_right", "right", "front_right"]


@dataclass
class RigCamera:
    name: str
    K: np.ndarray  # [3, 3]
    cam_to_ego: np.ndarray  # [4, 4] OpenCV camera → ego
    role: str  # "rig" | "target"
    yaw: float
    hfov: float
    lateral_offset: float = 0.0  # target cameras: metres along ego y from their roof mount
    source: str | None = None  # offset cameras: the rig camera this one is a shifted copy of

    def with_offset(self, offset: float) -> RigCamera:
        """This camera moved along ego y so that its lateral offset is ``offset``."""
        T = self.cam_to_ego.copy()
        T[1, 3] += offset - self.lateral_offset
        return RigCamera(self.name, self.K, T, self.role, self.yaw, self.hfov, offset, self.source)


def look_rotation(yaw: float, pitch_down: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """Camera-to-ego rotation of an OpenCV camera looking along ``yaw`` (radians, CCW from +x)."""
    cp, sp = np.cos(pitch_down), np.sin(pitch_down)
    f = np.array([np.cos(yaw) * cp, np.sin(yaw) * cp, -sp])  # optical axis (+z_cam)
    r = np.array([np.sin(yaw), -np.cos(yaw), 0.0])  # image right (+x_cam)
    d = np.cross(f, r)  # image down (+y_cam)
    R = np.stack([r, d, f], axis=1)
    if roll:
        c, s = np.cos(roll), np.sin(roll)
        R = R @ np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return R


def intrinsics(hfov: float, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    fx = 0.5 * width / np.tan(0.5 * hfov)
    cx = 0.5 * width + rng.normal(0.0, 0.01 * width)
    cy = 0.5 * height + rng.normal(0.0, 0.01 * height)
    return np.array([[fx, 0.0, cx], [0.0, fx, cy], [0.0, 0.0, 1.0]])


def _sector(yaw: float) -> str:
    k = int(np.round((yaw % (2 * np.pi)) / (np.pi / 4))) % 8
    return _SECTORS[k]


def _mount(yaw: float, height: float) -> np.ndarray:
    """A point on the roof's edge in direction ``yaw`` (a 2.6 m × 1.5 m roof ellipse)."""
    return np.array([0.3 + 1.0 * np.cos(yaw), 0.75 * np.sin(yaw), height])


def _pose(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = t
    return T


@dataclass
class RigVariety:
    """Per-camera overrides drawn from their own stream (``None``/0: keep the default draw)."""

    rng: np.random.Generator
    mount_height: tuple[float, float] | None = None  # metres
    hfov_deg: tuple[float, float] | None = None
    pitch_deg: tuple[float, float] | None = None  # downwards
    roll_deg: float = 0.0  # uniform in [-roll_deg, roll_deg]

    def draw(self, hfov: float, pitch: float, roll: float, height: float):
        """``(hfov, pitch, roll, height)`` (radians, metres) with the configured ranges applied."""
        u = self.rng.random(4)  # always four draws, so each range leaves the others' draws alone

        def pick(r, k):
            return r[0] + (r[1] - r[0]) * u[k]

        if self.hfov_deg is not None:
            hfov = np.radians(pick(self.hfov_deg, 0))
        if self.pitch_deg is not None:
            pitch = np.radians(pick(self.pitch_deg, 1))
        if self.roll_deg:
            roll = np.radians(self.roll_deg * (2.0 * u[2] - 1.0))
        if self.mount_height is not None:
            height = pick(self.mount_height, 3)
        return float(hfov), float(pitch), float(roll), float(height)


def make_rig(
    rng: np.random.Generator, num_cameras: int, width: int, height: int,
    variety: RigVariety | None = None,
) -> tuple[list[RigCamera], float]:
    """``num_cameras`` cameras with yaws spread round 360°, plus the roof height.

    ``variety`` replaces each camera's field of view, pitch, roll and mount height by draws from
    its ranges (the default draws from ``rng`` still happen, so the rest of the rig is unchanged).
    """
    roof = float(rng.uniform(1.5, 1.9))
    cams: list[RigCamera] = []
    step = 2 * np.pi / num_cameras
    names: list[str] = []
    for i in range(num_cameras):
        yaw = i * step + (rng.normal(0.0, np.radians(2.0)) if i else 0.0)
        # A ~70° front camera in full rigs (and lone ones); otherwise wide enough that
        # neighbours overlap a little even with few cameras.
        if i == 0 and (num_cameras >= 6 or num_cameras <= 2):
            hfov = np.radians(rng.uniform(66.0, 74.0))
        else:
            hfov = np.radians(np.clip(np.degrees(step) + 35.0, 95.0, 120.0) + rng.uniform(-4, 4))
        K = intrinsics(hfov, width, height, rng)
        pitch = np.radians(rng.uniform(0.0, 4.0))
        roll = np.radians(rng.normal(0, 0.3))
        mount = roof
        if variety is not None:
            hfov, pitch, roll, mount = variety.draw(hfov, pitch, roll, mount)
            K[0, 0] = K[1, 1] = 0.5 * width / np.tan(0.5 * hfov)
        R = look_rotation(yaw, pitch, roll)
        name = f"cam_{_sector(yaw)}"
        if name in names:
            name = f"{name}_{i}"
        names.append(name)
        cams.append(RigCamera(name, K, _pose(R, _mount(yaw, mount)), "rig", float(yaw), float(hfov)))
    return cams, roof


def make_targets(
    rng: np.random.Generator, rig: list[RigCamera], roof: float, count: int, width: int, height: int
) -> list[RigCamera]:
    """Extra supervision cameras between rig yaws, 0.5–2 m to the side of the rig."""
    out = []
    n = len(rig)
    order = rng.permutation(n)
    for k in range(count):
        i = int(order[k % n])
        a = rig[i].yaw
        b = rig[(i + 1) % n].yaw if n > 1 else a + np.pi / 2
        if b <= a:
            b += 2 * np.pi
        yaw = 0.5 * (a + b) + rng.normal(0.0, np.radians(3.0))
        hfov = np.radians(rng.uniform(80.0, 95.0))
        K = intrinsics(hfov, width, height, rng)
        offset = float(rng.uniform(0.5, 2.0)) * (1.0 if rng.random() < 0.5 else -1.0)
        pos = _mount(yaw, roof + rng.uniform(-0.2, 0.2)) + np.array([0.0, offset, 0.0])
        R = look_rotation(yaw, np.radians(rng.uniform(0.0, 4.0)))
        out.append(RigCamera(f"target_{k}", K, _pose(R, pos), "target", float(yaw), float(hfov),
                             offset))
    return out


def offset_name(name: str, offset: float) -> str:
    """``cam_front.off1.5`` (1.5 m to the left), ``cam_front.offm0.25`` (0.25 m to the right),
    ``cam_front.off0``: the offset in metres to the millimetre, ``m`` for minus (camera names
    allow only ``[A-Za-z0-9_.-]``)."""
    text = f"{abs(offset):.3f}".rstrip("0").rstrip(".")
    return f"{name}.off{'m' if offset < 0 and text != '0' else ''}{text}"


def offset_cameras(rig: list[RigCamera], offsets: list[float]) -> list[RigCamera]:
    """Every rig camera shifted by every offset (metres along ego +y: positive = left,
    negative = right), role ``"target"``, offset-major: all cameras of the first offset, then
    the next. Same intrinsics and rotation; only ``cam_to_ego``'s y translation changes."""
    out = []
    for off in offsets:
        for cam in rig:
            T = cam.cam_to_ego.copy()
            T[1, 3] += off
            out.append(RigCamera(offset_name(cam.name, off), cam.K, T, "target", cam.yaw, cam.hfov,
                                 float(off), cam.name))
    return out


def lidar_directions(
    beams: int = 32, azimuths: int = 1024, lo_deg: float = -25.0, hi_deg: float = 15.0
) -> np.ndarray:
    """Unit beam directions in the sensor (= ego-aligned) frame, ``[beams * azimuths, 3]``."""
    el = np.radians(np.linspace(lo_deg, hi_deg, beams))[:, None]
    az = (np.arange(azimuths) * (2 * np.pi / azimuths))[None, :]
    d = np.stack(np.broadcast_arrays(np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)), -1)
    return d.reshape(-1, 3)
