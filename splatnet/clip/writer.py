"""Write a log clip in splatnet clip format v1 (``docs/clip-format.md``).

The writer validates everything it is given (same rules as :meth:`splatnet.Clip.load`), encodes
the images in parallel into a temporary directory beside ``dst`` and renames it onto ``dst``
when complete, so a crash never leaves a half-written clip under the final name. Nothing is
written outside ``dst`` and that temporary directory: file names inside the clip are built from
validated camera names and frame indices only.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from splatnet.clip import _checks as C
from splatnet.clip._files import encode_image, encode_png_gray, probe_image
from splatnet.clip.actors import Actor, check_actors
from splatnet.errors import ValidationError
from splatnet.io.atomic import atomic_directory, atomic_write_bytes, atomic_write_text

ArrayLike = Any  # numpy array, torch tensor or nested lists
ImageSource = Union[np.ndarray, str, os.PathLike, Callable[[], np.ndarray]]


@dataclass
class CameraSpec:
    """One camera of the rig (or an extra supervision camera, ``role="target"``).

    Attributes:
        name: unique name, 1-128 characters from ``[A-Za-z0-9_.-]`` (it names directories).
        K: ``[3, 3]`` pinhole intrinsics in pixels (pixel centres at ``+0.5``), no distortion.
        width, height: image size in pixels; every image of this camera has this size.
        cam_to_ego: ``[4, 4]`` rigid camera-to-ego transform, OpenCV camera frame
            (+x right, +y down, +z forward).
        role: ``"rig"`` for the cameras a model sees as input, ``"target"`` for extra cameras
            off the rig used only as supervision / evaluation targets.
        mask: optional ``[H, W]`` bool/uint8 validity mask (True/nonzero = valid pixel, 0 = the
            ego vehicle's own hood or other pixels to ignore), or a path to such a PNG.
    """

    name: str
    K: ArrayLike
    width: int
    height: int
    cam_to_ego: ArrayLike
    role: str = "rig"
    mask: ArrayLike | str | os.PathLike | None = None


@dataclass
class FrameSpec:
    """One time step: a timestamp and the ego pose.

    Attributes:
        timestamp: seconds (any origin; real logs keep their absolute time).
        ego_to_world: ``[4, 4]`` rigid ego-to-world pose.
        camera_timestamps: optional ``{camera name: seconds}`` when a camera captured its image
            at a different time than ``timestamp`` (unsynchronised rigs such as nuScenes).
        camera_ego_to_world: optional ``{camera name: [4, 4]}`` ego pose at that camera's
            capture time; the camera's pose is then ``camera_ego_to_world[name] @ cam_to_ego``.
    """

    timestamp: float
    ego_to_world: ArrayLike
    camera_timestamps: Mapping[str, float] | None = None
    camera_ego_to_world: Mapping[str, ArrayLike] | None = None


@dataclass
class LidarSpec:
    """One LiDAR sweep (or any 3D point set, e.g. COLMAP points) attached to a frame.

    Attributes:
        points: ``[M, 3]`` float32 coordinates in metres.
        frame: ``"ego"`` (the ego frame at the sweep's pose) or ``"world"`` (the frame of the
            manifest's ego poses).
        intensity: optional ``[M]`` float32 intensities.
        timestamp: optional sweep time in seconds (defaults to the frame's timestamp).
        ego_to_world: optional ``[4, 4]`` ego pose at sweep time, used with ``frame="ego"``
            (defaults to the frame's ego pose).
    """

    points: ArrayLike
    frame: str = "ego"
    intensity: ArrayLike | None = None
    timestamp: float | None = None
    ego_to_world: ArrayLike | None = None


def _to_numpy(x: ArrayLike) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _check_rgb(arr: Any, cam: CameraSpec, where: str) -> np.ndarray:
    arr = _to_numpy(arr)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValidationError(
            f"{where}: image must be a uint8 [H, W, 3] array or a file path, got "
            f"{arr.dtype} {list(arr.shape)}"
        )
    if arr.shape[:2] != (cam.height, cam.width):
        raise ValidationError(
            f"{where}: image is {arr.shape[1]}x{arr.shape[0]}, camera {cam.name!r} expects "
            f"{cam.width}x{cam.height}"
        )
    return np.ascontiguousarray(arr)


def _image_bytes(src: ImageSource, cam: CameraSpec, fmt: str, quality: int, where: str):
    """Return ``(extension, producer)``; the producer encodes/copies in a worker thread."""
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        info = probe_image(path)
        if (info.width, info.height) != (cam.width, cam.height):
            raise ValidationError(
                f"{where}: image {path} is {info.width}x{info.height}, camera {cam.name!r} "
                f"expects {cam.width}x{cam.height}"
            )
        return info.format, path.read_bytes
    if callable(src):  # produced lazily in a worker thread (keeps memory flat for big clips)
        return fmt, lambda: encode_image(_check_rgb(src(), cam, where), fmt, quality)
    arr = _check_rgb(src, cam, where)
    return fmt, lambda: encode_image(arr, fmt, quality)


def _mask_bytes(src, h: int, w: int, where: str) -> Callable[[], bytes]:
    if isinstance(src, (str, os.PathLike)):
        from splatnet.clip._files import read_mask

        m = read_mask(Path(src))
    else:
        m = _to_numpy(src)
        if m.dtype != np.bool_:
            if not np.issubdtype(m.dtype, np.number):
                raise ValidationError(f"{where}: mask must be a bool or numeric array, got {m.dtype}")
            m = m != 0
    if m.shape != (h, w):
        raise ValidationError(f"{where}: mask has shape {list(m.shape)}, expected [{h}, {w}]")
    m8 = np.where(m, 255, 0).astype(np.uint8)
    return lambda: encode_png_gray(m8)


def _depth_bytes(src, h: int, w: int, fmt: str, scale: float, where: str):
    d = _to_numpy(src)
    if d.ndim == 3 and d.shape[-1] == 1:
        d = d[..., 0]
    if d.shape != (h, w) or not np.issubdtype(d.dtype, np.floating):
        raise ValidationError(
            f"{where}: depth must be a float [H, W] array of shape [{h}, {w}], got {d.dtype} {list(d.shape)}"
        )
    if not np.all(np.isfinite(d)) or (d < 0).any():
        raise ValidationError(f"{where}: depth must be finite and >= 0 (0 = no depth)")
    if fmt == "npy":
        d32 = np.ascontiguousarray(d, dtype=np.float32)

        def npy() -> bytes:
            import io

            buf = io.BytesIO()
            np.save(buf, d32, allow_pickle=False)
            return buf.getvalue()

        return "npy", npy
    q = np.rint(d.astype(np.float64) / scale)
    over = q > 65535
    if over.any():
        warnings.warn(
            f"{where}: {int(over.sum())} depth values beyond {65535 * scale:.1f} m do not fit a "
            "16-bit PNG and are stored as 0 (no depth); use depth_format='npy' to keep them",
            stacklevel=4,
        )
        q[over] = 0
    q16 = q.astype(np.uint16)
    return "png", lambda: encode_png_gray(q16)


def _npy_bytes(arr: np.ndarray) -> Callable[[], bytes]:
    def f() -> bytes:
        import io

        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        return buf.getvalue()

    return f


def write_clip(
    dst: str | os.PathLike,
    cameras: Sequence[CameraSpec],
    frames: Sequence[FrameSpec],
    images: Mapping[tuple[int, str], ImageSource],
    *,
    lidar: Mapping[int, LidarSpec | ArrayLike] | Sequence[LidarSpec | ArrayLike | None] | None = None,
    depths: Mapping[tuple[int, str], ArrayLike] | None = None,
    masks: Mapping[str, ArrayLike | str | os.PathLike] | None = None,
    sky_masks: Mapping[tuple[int, str], ArrayLike] | None = None,
    metadata: Mapping[str, Any] | None = None,
    actors: Sequence[Actor] | None = None,
    image_format: str = "jpg",
    jpeg_quality: int = 95,
    depth_format: str = "png16",
    depth_scale: float = C.DEFAULT_DEPTH_SCALE,
    world_frame: str = "first_ego",
    overwrite: bool = False,
    num_workers: int | None = None,
) -> Path:
    """Write a clip directory at ``dst`` and return its path.

    Args:
        dst: output directory (created; its parent directories too). Must not exist unless
            ``overwrite=True``, which only replaces an empty directory or an existing clip.
        cameras: the cameras, in the order :meth:`Clip.views` returns them.
        frames: the time steps, timestamps strictly increasing.
        images: ``{(frame index, camera name): image}`` for every frame and camera; an image is
            a uint8 ``[H, W, 3]`` array (encoded as ``image_format``), a zero-argument callable
            returning one (called in a worker thread, so large clips need not sit in memory), or
            the path of an existing JPEG/PNG of the camera's size (copied byte for byte).
        lidar: per frame, a :class:`LidarSpec` or a bare ``[M, 3]`` array (= ego frame at the
            frame's pose); a dict ``{frame index: ...}`` or a list with ``None`` for no sweep.
        depths: ``{(frame index, camera name): [H, W] float}`` ground-truth camera-z depth in
            metres, 0 = no depth. Stored as 16-bit PNG of ``depth / depth_scale``
            (``depth_format="png16"``; default scale 1/256 m, max 256 m) or float32 ``.npy``.
        masks: ``{camera name: mask}`` per-camera validity masks (alternative to
            ``CameraSpec.mask``).
        sky_masks: ``{(frame index, camera name): [H, W] bool}`` True where the pixel is sky.
        metadata: free-form JSON-serialisable dict stored in the manifest.
        actors: tracked objects (:class:`~splatnet.clip.actors.Actor`), box poses in the same
            frame as the ego poses; ids unique, frames in range. A clip with actors is written as
            format version 1.1, one without as 1 (readable by older splatnet).
        image_format: ``"jpg"`` or ``"png"`` for images given as arrays.
        world_frame: ``"first_ego"`` (the loader expresses everything relative to the first ego
            pose) or ``"poses"`` (the frame the poses are given in).
        num_workers: threads used to encode files (default: CPU count).
    """
    dst = Path(dst)
    C.check_choice(image_format, ("jpg", "png"), "write_clip(image_format)")
    C.check_choice(depth_format, ("png16", "npy"), "write_clip(depth_format)")
    C.check_choice(world_frame, C.WORLD_FRAMES, "write_clip(world_frame)")
    if not (isinstance(depth_scale, (int, float)) and math.isfinite(depth_scale) and depth_scale > 0):
        raise ValidationError(f"write_clip(depth_scale): must be a positive number, got {depth_scale!r}")
    if not cameras:
        raise ValidationError("write_clip(cameras): a clip needs at least one camera")
    if not frames:
        raise ValidationError("write_clip(frames): a clip needs at least one frame")

    cams: dict[str, CameraSpec] = {}
    cam_to_ego: dict[str, np.ndarray] = {}
    cam_json = []
    files: list[tuple[str, Callable[[], bytes]]] = []  # (relative path, producer)
    masks = dict(masks or {})
    for i, cam in enumerate(cameras):
        where = f"write_clip: cameras[{i}]"
        name = C.check_camera_name(cam.name, where)
        if name in cams:
            raise ValidationError(f"{where}: duplicate camera name {name!r}")
        width, height = C.check_size(cam.width, cam.height, where)
        C.check_image_size(width, height, where, label="image size")
        K = C.check_intrinsics(cam.K, width, height, f"{where}.K")
        T = C.check_rigid(cam.cam_to_ego, f"{where}.cam_to_ego")
        C.check_translation(T, f"{where}.cam_to_ego")
        C.check_choice(cam.role, C.CAMERA_ROLES, f"{where}.role")
        cams[name] = cam
        cam_to_ego[name] = T
        entry: dict[str, Any] = {
            "name": name,
            "role": cam.role,
            "width": width,
            "height": height,
            "K": C.matrix_to_json(K),
            "cam_to_ego": C.matrix_to_json(T),
        }
        mask = cam.mask
        if name in masks:
            if mask is not None:
                raise ValidationError(f"{where}: mask given both in CameraSpec.mask and masks[{name!r}]")
            mask = masks.pop(name)
        if mask is not None:
            rel = f"masks/{name}.png"
            files.append((rel, _mask_bytes(mask, height, width, f"{where}.mask")))
            entry["mask"] = rel
        cam_json.append(entry)
    if masks:
        raise ValidationError(f"write_clip(masks): unknown camera(s) {sorted(masks)}")

    def check_key(key, table: str) -> tuple[int, str]:
        if not (isinstance(key, tuple) and len(key) == 2):
            raise ValidationError(
                f"write_clip({table}): keys must be (frame index, camera name), got {key!r}"
            )
        f, c = key
        if isinstance(f, bool) or not isinstance(f, (int, np.integer)) or not 0 <= f < len(frames):
            raise ValidationError(f"write_clip({table}): frame index {f!r} out of range [0, {len(frames)})")
        if c not in cams:
            raise ValidationError(f"write_clip({table}): unknown camera {c!r} (known: {list(cams)})")
        return int(f), c

    for table, mapping in (("images", images), ("depths", depths or {}), ("sky_masks", sky_masks or {})):
        for key in mapping:
            check_key(key, table)

    if lidar is None:
        lidar_map: dict[int, Any] = {}
    elif isinstance(lidar, Mapping):
        lidar_map = dict(lidar)
    else:
        if len(lidar) != len(frames):
            raise ValidationError(
                f"write_clip(lidar): list has {len(lidar)} entries for {len(frames)} frames"
            )
        lidar_map = {i: v for i, v in enumerate(lidar) if v is not None}
    for f in lidar_map:
        if isinstance(f, bool) or not isinstance(f, (int, np.integer)) or not 0 <= f < len(frames):
            raise ValidationError(f"write_clip(lidar): frame index {f!r} out of range [0, {len(frames)})")

    frame_json = []
    timestamps = []
    for fi, fr in enumerate(frames):
        where = f"write_clip: frames[{fi}]"
        t = C.check_timestamp(fr.timestamp, f"{where}.timestamp")
        timestamps.append(t)
        E = C.check_rigid(fr.ego_to_world, f"{where}.ego_to_world")
        if fi == 0:
            world = C.world_from_poses(E, world_frame)
        C.check_world_distance(world @ E, f"{where}.ego_to_world", world_frame)
        ego_of = {}  # camera name -> its ego pose in this frame (for the camera-centre check)
        entry = {"timestamp": t, "ego_to_world": C.matrix_to_json(E)}
        if fr.camera_timestamps:
            entry["camera_timestamps"] = {}
            for c, tc in fr.camera_timestamps.items():
                if c not in cams:
                    raise ValidationError(f"{where}.camera_timestamps: unknown camera {c!r}")
                entry["camera_timestamps"][c] = C.check_timestamp(tc, f"{where}.camera_timestamps[{c!r}]")
        if fr.camera_ego_to_world:
            entry["camera_ego_to_world"] = {}
            for c, Ec in fr.camera_ego_to_world.items():
                if c not in cams:
                    raise ValidationError(f"{where}.camera_ego_to_world: unknown camera {c!r}")
                Ec = C.check_rigid(Ec, f"{where}.camera_ego_to_world[{c!r}]")
                C.check_world_distance(world @ Ec, f"{where}.camera_ego_to_world[{c!r}]", world_frame)
                ego_of[c] = Ec
                entry["camera_ego_to_world"][c] = C.matrix_to_json(Ec)
        for name, T in cam_to_ego.items():
            C.check_world_distance(
                world @ ego_of.get(name, E) @ T, where, world_frame, what=f"camera {name!r}"
            )

        entry["images"] = {}
        for name, cam in cams.items():
            if (fi, name) not in images:
                raise ValidationError(f"write_clip(images): missing image for frame {fi}, camera {name!r}")
            ext, producer = _image_bytes(
                images[(fi, name)], cam, image_format, jpeg_quality, f"write_clip(images[{fi}, {name!r}])"
            )
            rel = f"images/{name}/{fi:06d}.{ext}"
            files.append((rel, producer))
            entry["images"][name] = rel
        for table, mapping in (("depths", depths), ("sky_masks", sky_masks)):
            if not mapping:
                continue
            out = {}
            for name, cam in cams.items():
                if (fi, name) not in mapping:
                    continue
                w = f"write_clip({table}[{fi}, {name!r}])"
                if table == "depths":
                    ext, producer = _depth_bytes(
                        mapping[(fi, name)], cam.height, cam.width, depth_format, depth_scale, w
                    )
                    rel = f"depths/{name}/{fi:06d}.{ext}"
                else:
                    producer = _mask_bytes(mapping[(fi, name)], cam.height, cam.width, w)
                    rel = f"sky_masks/{name}/{fi:06d}.png"
                files.append((rel, producer))
                out[name] = rel
            if out:
                entry[table] = out
        if fi in lidar_map:
            entry["lidar"] = _lidar_entry(lidar_map[fi], fi, files, world, E, world_frame)
        frame_json.append(entry)
    C.check_increasing(timestamps, "write_clip(frames)")

    actor_json = None
    if actors is not None:
        actor_list = check_actors(actors, len(frames), "write_clip(actors)")
        first_world = C.world_from_poses(C.check_rigid(frames[0].ego_to_world, "frames[0]"),
                                         world_frame)
        for i, a in enumerate(actor_list):
            for j, T in enumerate(a.box_to_world):
                C.check_world_distance(first_world @ T, f"write_clip(actors[{i}]) ({a.id!r}) "
                                       f"box_to_world at frame {int(a.frames[j])}", world_frame)
        actor_json = [a.to_json() for a in actor_list] or None
    manifest: dict[str, Any] = {
        "format": C.FORMAT_NAME,
        "version": C.ACTORS_VERSION if actor_json else C.FORMAT_VERSION,
        "world_frame": world_frame,
    }
    if depths and depth_format == "png16":
        manifest["depth_scale"] = float(depth_scale)
    manifest["cameras"] = cam_json
    manifest["frames"] = frame_json
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise ValidationError(f"write_clip(metadata): must be a dict, got {type(metadata).__name__}")
        C.check_json_depth(metadata, "write_clip(metadata)")
        try:
            json.dumps(metadata, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ValidationError(f"write_clip(metadata): not JSON-serialisable ({e})") from None
        manifest["metadata"] = dict(metadata)
    if actor_json:
        manifest["actors"] = actor_json
    text = dump_manifest(manifest)
    return _commit(dst, files, text, overwrite, num_workers)


def _dump(obj: Any, indent: int) -> str:
    pad, inner = " " * indent, " " * (indent + 1)
    if isinstance(obj, Mapping) and obj:
        items = [f"{inner}{json.dumps(str(k))}: {_dump(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, (list, tuple)) and obj:
        if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in obj):
            return json.dumps(list(obj), allow_nan=False)  # a matrix row stays on one line
        return "[\n" + ",\n".join(inner + _dump(x, indent + 1) for x in obj) + "\n" + pad + "]"
    return json.dumps(obj, allow_nan=False)


def dump_manifest(manifest: Mapping[str, Any]) -> str:
    """Indented JSON with each innermost list of numbers (a matrix row) on one line."""
    return _dump(manifest, 0) + "\n"


def _lidar_entry(
    spec, fi: int, files: list, world: np.ndarray, frame_ego: np.ndarray, world_frame: str
) -> dict[str, Any]:
    where = f"write_clip: lidar[{fi}]"
    if not isinstance(spec, LidarSpec):
        spec = LidarSpec(points=spec)
    C.check_choice(spec.frame, C.LIDAR_FRAMES, f"{where}.frame")
    pts = _to_numpy(spec.points)
    if pts.ndim != 2 or pts.shape[1] != 3 or not np.issubdtype(pts.dtype, np.number):
        raise ValidationError(f"{where}: points must be a numeric [M, 3] array, got {list(pts.shape)}")
    pts = np.ascontiguousarray(pts, dtype=np.float32)
    ego = None
    if spec.ego_to_world is not None:
        if spec.frame != "ego":
            raise ValidationError(f"{where}: ego_to_world only applies to frame='ego' points")
        ego = C.check_rigid(spec.ego_to_world, f"{where}.ego_to_world")
        C.check_world_distance(world @ ego, f"{where}.ego_to_world", world_frame)
    # The loader's checks: finite, and within MAX_WORLD_DISTANCE once in the clip's world frame.
    to_world = world @ (frame_ego if ego is None else ego) if spec.frame == "ego" else world
    C.check_points(pts, to_world, where, world_frame)
    rel = f"lidar/{fi:06d}.npy"
    files.append((rel, _npy_bytes(pts)))
    entry: dict[str, Any] = {"path": rel, "frame": spec.frame}
    if spec.intensity is not None:
        inten = np.ascontiguousarray(_to_numpy(spec.intensity), dtype=np.float32)
        if inten.shape != (pts.shape[0],):
            raise ValidationError(
                f"{where}: intensity has shape {list(inten.shape)}, expected [{pts.shape[0]}]"
            )
        if not np.all(np.isfinite(inten)):
            raise ValidationError(f"{where}: intensity contains NaN or infinite values")
        rel_i = f"lidar/{fi:06d}_intensity.npy"
        files.append((rel_i, _npy_bytes(inten)))
        entry["intensity"] = rel_i
    if spec.timestamp is not None:
        entry["timestamp"] = C.check_timestamp(spec.timestamp, f"{where}.timestamp")
    if ego is not None:
        entry["ego_to_world"] = C.matrix_to_json(ego)
    return entry


def _commit(dst: Path, files, manifest_text: str, overwrite: bool, num_workers: int | None) -> Path:
    if dst.exists() or dst.is_symlink():
        if not overwrite:
            raise FileExistsError(f"{dst}: already exists (pass overwrite=True to replace it)")
        if dst.is_symlink() or not dst.is_dir():
            raise FileExistsError(f"{dst}: exists and is not a directory; refusing to replace it")
        if any(dst.iterdir()) and not (dst / C.MANIFEST_NAME).is_file():
            raise FileExistsError(
                f"{dst}: exists, is not empty and is not a clip (no {C.MANIFEST_NAME}); "
                "refusing to replace it"
            )
    with atomic_directory(dst, force=overwrite) as tmp:
        for d in sorted({str(Path(rel).parent) for rel, _ in files}):
            (tmp / d).mkdir(parents=True, exist_ok=True)

        def work(item):
            rel, producer = item
            atomic_write_bytes(tmp / rel, producer())
            os.chmod(tmp / rel, 0o644)

        workers = num_workers or os.cpu_count() or 1
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(work, files))
        atomic_write_text(tmp / C.MANIFEST_NAME, manifest_text)
        os.chmod(tmp / C.MANIFEST_NAME, 0o644)
        os.chmod(tmp, 0o755)
    return dst
