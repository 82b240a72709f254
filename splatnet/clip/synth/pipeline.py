"""``generate``: render a synthetic street clip and write it with the clip writer."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from splatnet.clip.synth import materials as M
from splatnet.clip.synth.camera_fx import to_uint8
from splatnet.clip.synth.effects import Effects
from splatnet.clip.synth.layout import Layout, generate_layout
from splatnet.clip.synth.noise import Noise
from splatnet.clip.synth.realism import Realism, resolve
from splatnet.clip.synth.render import SceneMeshes, rotate, shade
from splatnet.clip.synth.rig import (
    RigCamera,
    RigVariety,
    lidar_directions,
    make_rig,
    make_targets,
    offset_cameras,
    offset_name,
)
from splatnet.clip.synth.tracks import make_actors, resolve_removed
from splatnet.errors import ValidationError

#: Depth beyond this is stored as 0 ("no depth"): the 16-bit PNG depth format tops out at 256 m.
MAX_DEPTH = 250.0
#: Bumped whenever the same arguments render a different clip (caches key on it).
GENERATOR_VERSION = 2
#: Rays cast and shaded at once (whole cameras per batch): bounds memory for large images.
MAX_RAYS = 2_000_000
_REFLECTIVITY = np.zeros(max(M.REFLECTIVITY) + 1, np.float32)  # material id -> LiDAR reflectivity
_REFLECTIVITY[list(M.REFLECTIVITY)] = list(M.REFLECTIVITY.values())
#: Object kinds whose boxes, poses and velocities the metadata lists.
AGENTS = ("moving_car", "parked_car", "pedestrian")
#: ``target_offsets``: at most this many, each within this many metres of the rig.
MAX_OFFSETS, MAX_OFFSET_M = 16, 20.0


@dataclass
class SynthClip:
    """A rendered clip in memory (what :func:`generate` writes).

    ``images[(f, name)]`` uint8 ``[H, W, 3]``; ``depths[(f, name)]`` float32 ``[H, W]`` camera-z
    metres (0 = sky, beyond ``MAX_DEPTH`` or the ego's hood); ``sky[(f, name)]`` bool ``[H, W]``;
    ``masks[name]`` bool ``[H, W]`` (True = valid; only cameras that see the ego's hood);
    ``lidar[f]`` float32 ``[M, 3]`` ego-frame points and ``intensity[f]`` ``[M]``;
    ``actors``: :class:`splatnet.clip.Actor` tracks of every car and pedestrian (world frame,
    see :mod:`splatnet.clip.synth.tracks`).
    """

    cameras: list[RigCamera]
    width: int
    height: int
    timestamps: list[float]
    ego_to_world: list[np.ndarray]  # [4, 4] per frame; world = ego frame of frame 0
    images: dict = field(default_factory=dict)
    depths: dict = field(default_factory=dict)
    sky: dict = field(default_factory=dict)
    masks: dict = field(default_factory=dict)
    lidar: list = field(default_factory=list)
    intensity: list = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    actors: list = field(default_factory=list)
    layout: Layout | None = None
    timings: dict = field(default_factory=dict)  # seconds per stage (not in the metadata)


def _check_args(seed, cameras, frames, size, targets, frame_interval):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValidationError(f"synth: seed must be a non-negative integer, got {seed!r}")
    if not isinstance(cameras, (int, np.integer)) or not 1 <= cameras <= 12:
        raise ValidationError(f"synth: cameras must be an integer in [1, 12], got {cameras!r}")
    if not isinstance(frames, (int, np.integer)) or not 1 <= frames <= 1000:
        raise ValidationError(f"synth: frames must be an integer in [1, 1000], got {frames!r}")
    if not isinstance(targets, (int, np.integer)) or not 0 <= targets <= 12:
        raise ValidationError(f"synth: targets must be an integer in [0, 12], got {targets!r}")
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValidationError(f"synth: size must be (height, width), got {size!r}") from None
    if not (8 <= h <= 4096 and 8 <= w <= 4096):
        raise ValidationError(f"synth: size {h}x{w} out of range (8..4096 per side)")
    if not (0.0 < float(frame_interval) <= 10.0):
        raise ValidationError(f"synth: frame_interval must be in (0, 10] s, got {frame_interval!r}")
    return h, w


def _check_offsets(offsets) -> list[float]:
    if isinstance(offsets, np.ndarray) and offsets.ndim == 1:
        offsets = offsets.tolist()
    if isinstance(offsets, (str, bytes)) or not isinstance(offsets, Sequence):
        raise ValidationError(f"synth: target_offsets must be a list of metres, got {offsets!r}")
    out = []
    for o in offsets:
        if isinstance(o, bool) or not isinstance(o, (int, float, np.integer, np.floating)) \
                or not math.isfinite(float(o)) or abs(float(o)) > MAX_OFFSET_M:
            raise ValidationError(f"synth: target_offsets: each offset must be a number of metres "
                                  f"in [-{MAX_OFFSET_M:g}, {MAX_OFFSET_M:g}], got {o!r}")
        out.append(float(o) + 0.0)  # -0.0 -> 0.0
    if len(out) > MAX_OFFSETS:
        raise ValidationError(f"synth: target_offsets: at most {MAX_OFFSETS} offsets, got {len(out)}")
    names = [offset_name("", o) for o in out]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        same = [o for o, n in zip(out, names) if n == twice[0]]
        raise ValidationError(f"synth: target_offsets: {', '.join(f'{o:g}' for o in same)} name the "
                              "same cameras (offsets count to the millimetre); give each once")
    return out


class _Ticker:
    """Accumulates wall-clock seconds per stage into a dict (for benchmarks, not metadata)."""

    def __init__(self, out: dict):
        self.out = out
        self.t = time.perf_counter()

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        self.out[stage] = self.out.get(stage, 0.0) + now - self.t
        self.t = now


def _sphere_directions(n: int) -> np.ndarray:
    """``n`` unit vectors spread evenly over the sphere (Fibonacci lattice)."""
    k = np.arange(n) + 0.5
    z = 1.0 - 2.0 * k / n
    r = np.sqrt(1.0 - z * z)
    phi = np.pi * (3.0 - np.sqrt(5.0)) * k
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def _has_clearance(scene, point: np.ndarray, min_dist: float = 0.8) -> bool:
    """Is ``point`` at least ``min_dist`` from every surface and not enclosed (some upward ray
    escapes to the sky)?"""
    dirs = _sphere_directions(96)
    t = scene.cast(point[None], dirs).t
    return not ((t < min_dist).any() or np.isfinite(t[dirs[:, 2] > 0.3]).all())


def _place_targets(lay: Layout, meshes: SceneMeshes, targets: list, times: list) -> list:
    """Keep each target camera clear of cars, poles, walls and crowns at every frame: the
    first clear one of its lateral offset, the mirrored one, then smaller ones (never under
    0.5 m); the last try stands if none is clear (rare)."""
    candidates = []
    for cam in targets:
        o = cam.lateral_offset
        sign, small = np.sign(o), max(0.5, 0.6 * abs(o))
        offsets = (o, -o, sign * small, -sign * small, sign * 0.5, -sign * 0.5)
        candidates.append([cam.with_offset(float(off)) for off in offsets])
    clear = [np.ones(len(c), bool) for c in candidates]
    for t in times if targets else []:  # one scene at a time: long clips stay small in memory
        scene, E = meshes.at(t), lay.ego_pose(t)
        for cands, ok in zip(candidates, clear):
            for j, cam in enumerate(cands):
                ok[j] = ok[j] and _has_clearance(scene, (E @ cam.cam_to_ego)[:3, 3])
    return [cands[int(np.argmax(ok)) if ok.any() else -1] for cands, ok in zip(candidates, clear)]


def _frame_images(scene, noise: Noise, E: np.ndarray, f: int, t: float, cams: list[RigCamera],
                  effects: Effects | None, h: int, w: int, shadows: bool, tick):
    """Yields ``(camera, uint8 image, depth, sky mask)`` of every camera of ``cams`` (their
    order in the clip) at frame ``f`` (time ``t``, ego pose ``E``), rendering them in batches
    of at most ``MAX_RAYS`` rays to bound memory at large image sizes."""
    per_batch = max(1, MAX_RAYS // (h * w))
    for c0 in range(0, len(cams), per_batch):
        batch = cams[c0:c0 + per_batch]
        rgb, depth, sky, z, obj = _render_cameras(scene, noise, E, batch, h, w, shadows, tick)
        for c, cam in enumerate(batch):
            if effects is None:
                yield cam, to_uint8(rgb[c]), depth[c], sky[c]
            else:
                yield (cam, *effects.apply(f, c0 + c, t, cam, rgb[c], depth[c], sky[c], z[c],
                                           obj[c]))
        if effects is not None:
            tick("effects")


def _render_cameras(scene, noise: Noise, E: np.ndarray, cams: list[RigCamera], h: int, w: int,
                    shadows: bool, tick) -> tuple[np.ndarray, ...]:
    """Images ``[C, H, W, 3]`` float in [0, 1], depths ``[C, H, W]`` (0: none), sky masks, raw
    camera-z ``[C, H, W]`` (inf: sky) and the object index each pixel sees (-1: sky) of
    ``cams`` with the ego at pose ``E`` (scene frame)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    px, py = xs.ravel(), ys.ravel()  # [HW] pixel centres
    origins, dirs, angles = [], [], []
    for cam in cams:
        Tcw = E @ cam.cam_to_ego
        K = cam.K
        # Directions with camera-z = 1, so the ray parameter of a hit is its depth.
        d_cam = np.stack([(px - K[0, 2]) / K[0, 0], (py - K[1, 2]) / K[1, 1], np.ones_like(px)], 1)
        origins.append(np.broadcast_to(Tcw[:3, 3], d_cam.shape))
        dirs.append(rotate(d_cam, Tcw[:3, :3]))
        angles.append(np.full(h * w, 1.0 / K[0, 0]))
    o = np.concatenate(origins).astype(np.float32)
    d = np.concatenate(dirs).astype(np.float32)
    tick("camera_rays")
    hits = scene.cast(o, d)
    tick("cast")
    rgb = shade(scene, noise, o, d, hits, np.concatenate(angles), shadows=shadows)
    tick("shade")
    n = len(cams)
    depth = np.where(np.isfinite(hits.t) & (hits.t <= MAX_DEPTH), hits.t, 0.0)
    sky = ~np.isfinite(hits.t)
    obj = np.full(hits.t.shape, -1, np.int64)
    obj[~sky] = scene.meshes.tri_obj[hits.prim[~sky]]
    return (rgb.reshape(n, h, w, 3), depth.astype(np.float32).reshape(n, h, w), sky.reshape(n, h, w),
            hits.t.reshape(n, h, w), obj.reshape(n, h, w))


def _lidar_sweep(scene, E: np.ndarray, sensor: np.ndarray, beam_dirs: np.ndarray,
                 max_range: float) -> tuple[np.ndarray, np.ndarray]:
    """Ego-frame points ``[M, 3]`` and intensities ``[M]`` of one instantaneous sweep from
    ``sensor`` (ego frame) with the ego at pose ``E``."""
    origin = (E @ np.append(sensor, 1.0))[:3]
    world_dirs = rotate(beam_dirs, E[:3, :3])
    hits = scene.cast(np.broadcast_to(origin, beam_dirs.shape), world_dirs)
    ok = np.isfinite(hits.t) & (hits.t <= max_range) & (hits.t >= 0.5)
    pts = (sensor + beam_dirs[ok] * hits.t[ok, None]).astype(np.float32)
    refl = _REFLECTIVITY[scene.meshes.tri_mat[hits.prim[ok]]]
    cos_inc = np.abs(np.sum(hits.normal[ok] * world_dirs[ok], 1))
    return pts, (refl * (0.3 + 0.7 * cos_inc)).astype(np.float32)


def render_clip(
    seed: int,
    cameras: int = 6,
    frames: int = 3,
    size: tuple[int, int] = (256, 448),
    targets: int = 0,
    *,
    lidar: bool = True,
    shadows: bool = True,
    frame_interval: float = 0.1,
    lidar_beams: int = 32,
    lidar_azimuths: int = 1024,
    lidar_range: float = 80.0,
    realism: Realism | str | None = None,
    target_offsets: Sequence[float] = (),
    without_actors: Sequence[str] = (),
) -> SynthClip:
    """Render a synthetic clip in memory. Same arguments always give identical arrays.

    ``realism`` (a :class:`Realism`, a preset name such as ``"real"``, or None = all off) adds
    camera effects and scene and rig variety; see :mod:`splatnet.clip.synth.realism`.

    ``target_offsets`` (metres along the ego's y axis: positive = left, negative = right) adds,
    for each offset, every rig camera shifted by it at every frame, role ``"target"``, named
    ``<camera>.off<metres>`` / ``<camera>.offm<metres>`` (``m``: minus, to the millimetre, e.g.
    ``cam_front.off1.5``, ``cam_front.offm2``): what the rig would see from an ego path moved
    sideways. They are placed exactly (even inside a parked car), share their rig camera's
    realism look and draw nothing, so the rest of the clip is unchanged.

    ``without_actors`` (actor ids, e.g. ``["car_3", "ped_0"]``) renders the same clip with
    those cars and pedestrians taken out of the world: images (and the shadows they cast),
    depths, sky masks, LiDAR, the actor list and ``metadata["objects"]`` lose them; everything
    else (street, rig, target placement, exposure, textures) is what the full clip has. An
    unknown id is a ``ValidationError`` listing the clip's ids.
    """
    h, w = _check_args(seed, cameras, frames, size, targets, frame_interval)
    offsets = _check_offsets(target_offsets)
    r = resolve(realism)
    seed = int(seed)
    timings: dict = {}
    tick = _Ticker(timings)

    def stream(*k):  # realism's own streams, [seed, 3, ...]
        return np.random.default_rng([seed, 3, *k])

    # Independent streams, so e.g. the camera count does not change the street.
    speed = None if r.ego_speed is None else float(stream(3).uniform(*r.ego_speed))
    lay = generate_layout(np.random.default_rng([seed, 0]), frame_interval * (frames - 1),
                          ego_speed=speed, sky_rng=stream(2) if r.sky_variety else None,
                          texture_variety=r.texture_variety)
    removed = resolve_removed(lay, without_actors)  # before any rendering
    rig_rng = np.random.default_rng([seed, 1])
    noise = Noise(np.random.default_rng([seed, 2]))
    if r.rig_cameras is not None:
        cameras = int(stream(0).integers(r.rig_cameras[0], r.rig_cameras[1] + 1))
    variety = None
    if r.mount_height or r.hfov_deg or r.pitch_deg or r.roll_deg:
        variety = RigVariety(stream(1), r.mount_height, r.hfov_deg, r.pitch_deg, r.roll_deg)
    rig, roof = make_rig(rig_rng, int(cameras), w, h, variety)
    times = [k * float(frame_interval) for k in range(frames)]
    extra = make_targets(rig_rng, rig, roof, int(targets), w, h)
    full = SceneMeshes(lay)
    meshes = SceneMeshes(lay, frozenset(removed.values())) if removed else full
    # Target cameras off the rig must not sit in or against a car, a pole or a wall (of the
    # full street: removing actors does not move them).
    all_cams = rig + _place_targets(lay, full, extra, times) + offset_cameras(rig, offsets)

    E0_inv = np.linalg.inv(lay.ego_pose(0.0))
    clip = SynthClip(all_cams, w, h, times, [E0_inv @ lay.ego_pose(t) for t in times],
                     layout=lay, timings=timings)
    sensor = np.array([0.2, 0.0, roof + 0.3])  # LiDAR in the ego frame, above the roof
    beam_dirs = lidar_directions(lidar_beams, lidar_azimuths)
    effects = Effects(r, seed, all_cams, lay, h, w) if r.active else None
    if effects is not None:
        clip.masks = effects.masks()
        if removed and r.auto_exposure:
            # Auto exposure is metered on the full street's first frame, as in the full clip.
            sources = [c for c in all_cams if c.source is None]
            for _ in _frame_images(full.at(times[0]), noise, lay.ego_pose(times[0]), 0, times[0],
                                   sources, effects, h, w, shadows, tick):
                pass
    tick("layout")
    for f, t in enumerate(times):
        scene = meshes.at(t)  # moving objects posed at this frame's time
        E = lay.ego_pose(t)
        tick("build_scene")
        for cam, img, d, sk in _frame_images(scene, noise, E, f, t, all_cams, effects, h, w,
                                             shadows, tick):
            clip.images[(f, cam.name)] = img
            clip.depths[(f, cam.name)] = d
            clip.sky[(f, cam.name)] = sk
        if lidar:
            pts, intensity = _lidar_sweep(scene, E, sensor, beam_dirs, lidar_range)
            clip.lidar.append(pts)
            clip.intensity.append(intensity)
            tick("lidar")
    clip.actors = make_actors(lay, times, E0_inv, list(removed.values()))
    clip.metadata = _metadata(
        lay,
        seed,
        all_cams,
        times,
        E0_inv,
        roof,
        sensor,
        lidar,
        shadows,
        (lidar_beams, lidar_azimuths, lidar_range),
        frame_interval,
        removed,
    )
    if effects is not None:
        clip.metadata["realism"] = effects.metadata(all_cams)
    return clip


def _metadata(lay, seed, cams, times, E0_inv, roof, sensor, lidar, shadows, lidar_cfg, dt,
              removed: dict[str, int]) -> dict:
    R0 = E0_inv[:3, :3]
    objects = []
    gone = set(removed.values())
    for i, o in enumerate(lay.objects):
        if o.kind not in AGENTS or i in gone:
            continue
        per_frame = []
        for t in times:
            T = E0_inv @ lay.object_pose(i, t)
            vel = R0 @ lay.object_velocity(i, t)
            per_frame.append(
                {
                    "position": [round(float(x), 4) for x in T[:3, 3]],
                    "yaw": round(float(np.arctan2(T[1, 0], T[0, 0])), 5),
                    "velocity": [round(float(x), 4) for x in vel],
                }
            )
        objects.append(
            {
                "id": i,
                "kind": o.kind,
                "moving": o.dynamic,
                "size_lwh": [round(float(x), 3) for x in o.size],
                "frames": per_frame,
            }
        )
    out = {
        "generator": "splatnet.clip.synth",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "license": "synthetic, generated by splatnet (Apache-2.0)",
        "frames": "world = ego frame of frame 0 (x forward, y left, z up); ego origin on the "
        "ground below the vehicle centre",
        "frame_interval_s": dt,
        "roof_height_m": round(roof, 4),
        "max_depth_m": MAX_DEPTH,
        "depth": "camera z in metres; 0 where the ray hits nothing (sky) or beyond max_depth_m",
        "shadows": bool(shadows),
        "lidar": None
        if not lidar
        else {
            "sensor_in_ego": [round(float(x), 4) for x in sensor],
            "beams": lidar_cfg[0],
            "azimuths": lidar_cfg[1],
            "elevation_deg": [-25.0, 15.0],
            "max_range_m": lidar_cfg[2],
            "min_range_m": 0.5,
            "sweep": "instantaneous at the frame timestamp (no rolling shutter)",
        },
        "cameras": {c.name: _camera_meta(c) for c in cams},
        "sun_direction_world": [round(float(x), 5) for x in R0 @ lay.sun_dir],
        "street": lay.info,
        "objects_doc": "cars and pedestrians: size_lwh of the box; per frame the world "
                       "position of the box's bottom centre, yaw about world z (rad), "
                       "velocity (m/s, world)",
        "objects": objects,
    }
    if removed:
        out["without_actors"] = list(removed)
    return out


def _camera_meta(c: RigCamera) -> dict:
    out = {"hfov_deg": round(float(np.degrees(c.hfov)), 3), "yaw_deg": round(float(np.degrees(c.yaw)), 3)}
    if c.role == "target":
        out["lateral_offset_m"] = round(c.lateral_offset, 4)
    if c.source is not None:
        out["shifted_from"] = c.source
    return out


def generate(
    dst: str | os.PathLike,
    seed: int,
    cameras: int = 6,
    frames: int = 3,
    size: tuple[int, int] = (256, 448),
    targets: int = 0,
    *,
    lidar: bool = True,
    shadows: bool = True,
    frame_interval: float = 0.1,
    jpeg_quality: int = 90,
    depth_format: str = "png16",
    overwrite: bool = False,
    realism: Realism | str | None = None,
    image_format: str = "jpg",
    target_offsets: Sequence[float] = (),
    without_actors: Sequence[str] = (),
) -> Path:
    """Render a synthetic driving clip for ``seed`` and write it to ``dst`` (clip format v1).

    Args:
        dst: output clip directory (must not exist unless ``overwrite``).
        seed: any non-negative integer; the same seed always gives the same clip.
        cameras: rig cameras, yaws spread round 360° (the first looks forward).
        frames: time steps ``frame_interval`` seconds apart.
        size: ``(height, width)`` of every image.
        targets: extra cameras off the rig (role ``"target"``) for supervision.
        lidar: ray-cast a 32-beam roof LiDAR sweep per frame (ego-frame points + intensity).
        shadows: cast shadow rays towards the sun.
        jpeg_quality: JPEG quality of the stored images (``image_format="jpg"``).
        depth_format: ``"png16"`` (1/256 m steps) or ``"npy"`` (float32), see the clip format.
        realism: camera effects and scene/rig variety: a :class:`Realism`, a preset name
            (``"none"``, ``"real"``, ``"varied"``) or None (all off); see
            :mod:`splatnet.clip.synth.realism`. Cameras that see the ego's hood get a validity
            mask (hood pixels invalid).
        image_format: ``"jpg"`` or ``"png"`` (lossless: keeps only ``realism``'s JPEG).
        target_offsets: metres along the ego's y axis (positive = left, negative = right): for
            each, every rig camera shifted by it at every frame, role ``"target"``, named
            ``<camera>.off<m>`` or ``<camera>.offm<m>`` (see :func:`render_clip`).
        without_actors: actor ids (``car_<k>``, ``ped_<k>``) to leave out of the world: the
            same clip without them (see :func:`render_clip`).

    Returns the clip path. The manifest's ``actors`` (clip format 1.1) are every car's and
    pedestrian's box and exact pose per frame (:mod:`splatnet.clip.synth.tracks`); its
    ``metadata`` records the seed, the street, the sun and every car's and pedestrian's box,
    pose and velocity per frame (world frame), and with ``realism`` its settings and what each
    camera drew (gains, hood, mount).
    """
    from splatnet.clip.writer import CameraSpec, FrameSpec, LidarSpec, write_clip

    clip = render_clip(
        seed, cameras, frames, size, targets, lidar=lidar, shadows=shadows,
        frame_interval=frame_interval, realism=realism, target_offsets=target_offsets,
        without_actors=without_actors,
    )
    specs = [
        CameraSpec(c.name, c.K, clip.width, clip.height, c.cam_to_ego, role=c.role) for c in clip.cameras
    ]
    fr = [FrameSpec(t, E) for t, E in zip(clip.timestamps, clip.ego_to_world)]
    lid = None
    if lidar:
        lid = [LidarSpec(p, frame="ego", intensity=i) for p, i in zip(clip.lidar, clip.intensity)]
    return write_clip(
        dst,
        specs,
        fr,
        clip.images,
        lidar=lid,
        depths=clip.depths,
        sky_masks=clip.sky,
        masks=clip.masks or None,
        metadata=clip.metadata,
        actors=clip.actors,
        image_format=image_format,
        jpeg_quality=jpeg_quality,
        depth_format=depth_format,
        overwrite=overwrite,
    )
