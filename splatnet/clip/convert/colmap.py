"""COLMAP sparse model (binary ``*.bin`` or text ``*.txt``) → splatnet clip.

Input: a COLMAP project (``sparse/0/`` or ``sparse/`` and ``images/``) or a model directory
(holding ``cameras``, ``images`` and ``points3D`` as ``.bin`` or ``.txt``); ``images=`` overrides
where the image files are looked up (default: ``images/`` in the project, or beside the model).

Layout (like nerfstudio): every registered image becomes its own camera (``img00000``, … in image
name order) in one frame at ``t = 0``; ``world_frame: "poses"`` keeps COLMAP's world frame and
(arbitrary) scale. ``points3D`` become that frame's world-frame points (their colours and
errors are not stored); ``metadata.source.files`` maps cameras to COLMAP image names.

Conventions: COLMAP stores world-to-camera ``qvec = (qw, qx, qy, qz)`` (Hamilton) and ``tvec``:
``x_cam = R(q) x_world + t`` in the OpenCV camera frame, and pixel centres at ``+0.5`` like
splatnet. Camera models ``SIMPLE_PINHOLE``, ``PINHOLE``, ``SIMPLE_RADIAL``, ``RADIAL`` and
``OPENCV`` are handled; the radial/OpenCV ones are undistorted at conversion (kornia) to the same
``K`` and image size. Other models are rejected with their name.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from splatnet.clip._files import read_rgb
from splatnet.clip.convert._geom import inv_rigid, pose_from_quat
from splatnet.clip.convert._undistort import has_distortion, undistort_rgb
from splatnet.clip.writer import CameraSpec, FrameSpec, LidarSpec, write_clip
from splatnet.errors import FormatError, ValidationError

# model id -> (name, number of params)
CAMERA_MODELS = {
    0: ("SIMPLE_PINHOLE", 3),
    1: ("PINHOLE", 4),
    2: ("SIMPLE_RADIAL", 4),
    3: ("RADIAL", 5),
    4: ("OPENCV", 8),
    5: ("OPENCV_FISHEYE", 8),
    6: ("FULL_OPENCV", 12),
    7: ("FOV", 5),
    8: ("SIMPLE_RADIAL_FISHEYE", 4),
    9: ("RADIAL_FISHEYE", 5),
    10: ("THIN_PRISM_FISHEYE", 12),
}
_MODEL_BY_NAME = {name: (mid, n) for mid, (name, n) in CAMERA_MODELS.items()}


def camera_matrix(model: str, params: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Pinhole ``K`` and OpenCV distortion ``(k1, k2, p1, p2)`` of a COLMAP camera."""
    p = [float(x) for x in params]
    if model == "SIMPLE_PINHOLE":
        f, cx, cy = p
        fx = fy = f
        dist = [0.0, 0.0, 0.0, 0.0]
    elif model == "PINHOLE":
        fx, fy, cx, cy = p
        dist = [0.0, 0.0, 0.0, 0.0]
    elif model == "SIMPLE_RADIAL":
        f, cx, cy, k = p
        fx = fy = f
        dist = [k, 0.0, 0.0, 0.0]
    elif model == "RADIAL":
        f, cx, cy, k1, k2 = p
        fx = fy = f
        dist = [k1, k2, 0.0, 0.0]
    elif model == "OPENCV":
        fx, fy, cx, cy, k1, k2, p1, p2 = p
        dist = [k1, k2, p1, p2]
    else:
        raise ValidationError(
            f"{where}: COLMAP camera model {model} is not supported (supported: SIMPLE_PINHOLE, "
            "PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV)"
        )
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    return K, np.array(dist)


# ------------------------------------------------------------------ binary reader


def _read(f: BinaryIO, fmt: str, path: Path) -> tuple:
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise FormatError(f"{path}: file is truncated")
    return struct.unpack(fmt, data)


def _read_cstring(f: BinaryIO, path: Path) -> str:
    out = bytearray()
    while True:
        c = f.read(1)
        if not c:
            raise FormatError(f"{path}: file is truncated inside an image name")
        if c == b"\x00":
            return out.decode("utf-8")
        out += c


def read_cameras_bin(path: Path) -> dict[int, dict[str, Any]]:
    cams = {}
    with open(path, "rb") as f:
        (n,) = _read(f, "<Q", path)
        for _ in range(n):
            cid, mid, w, h = _read(f, "<iiQQ", path)
            if mid not in CAMERA_MODELS:
                raise FormatError(f"{path}: camera {cid} has unknown model id {mid}")
            name, nparams = CAMERA_MODELS[mid]
            params = np.array(_read(f, f"<{nparams}d", path))
            cams[cid] = {"model": name, "width": w, "height": h, "params": params}
    return cams


def read_images_bin(path: Path) -> dict[int, dict[str, Any]]:
    images = {}
    with open(path, "rb") as f:
        (n,) = _read(f, "<Q", path)
        for _ in range(n):
            iid, qw, qx, qy, qz, tx, ty, tz, cid = _read(f, "<idddddddi", path)
            name = _read_cstring(f, path)
            (npts,) = _read(f, "<Q", path)
            f.seek(24 * npts, 1)  # points2D: x, y (double), point3D_id (int64)
            images[iid] = {"qvec": (qw, qx, qy, qz), "tvec": (tx, ty, tz), "camera_id": cid, "name": name}
        if f.tell() > path.stat().st_size:
            raise FormatError(f"{path}: file is truncated")
    return images


def read_points3d_bin(path: Path) -> np.ndarray:
    pts = []
    with open(path, "rb") as f:
        (n,) = _read(f, "<Q", path)
        for _ in range(n):
            vals = _read(f, "<QdddBBBdQ", path)
            pts.append(vals[1:4])
            f.seek(8 * vals[-1], 1)  # track: (image_id int32, point2D_idx int32)
        if f.tell() > path.stat().st_size:
            raise FormatError(f"{path}: file is truncated")
    return np.array(pts, dtype=np.float64).reshape(-1, 3)


# ------------------------------------------------------------------ text reader


def _lines(path: Path):
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            yield line


def read_cameras_txt(path: Path) -> dict[int, dict[str, Any]]:
    cams = {}
    for line in _lines(path):
        parts = line.split()
        try:
            cid, model, w, h = int(parts[0]), parts[1], int(parts[2]), int(parts[3])
            params = np.array([float(x) for x in parts[4:]])
        except (IndexError, ValueError):
            raise FormatError(f"{path}: cannot parse camera line {line!r}") from None
        if model not in _MODEL_BY_NAME or len(params) != _MODEL_BY_NAME[model][1]:
            raise FormatError(f"{path}: camera {cid}: unknown model {model!r} or wrong parameter count")
        cams[cid] = {"model": model, "width": w, "height": h, "params": params}
    return cams


def read_images_txt(path: Path) -> dict[int, dict[str, Any]]:
    images = {}
    # Image lines alternate with (possibly empty) points2D lines; read the raw text to keep them.
    raw = [ln for ln in path.read_text(encoding="utf-8").splitlines() if not ln.startswith("#")]
    i = 0
    while i < len(raw):
        line = raw[i].strip()
        if not line:
            i += 1
            continue
        parts = line.split(maxsplit=9)
        try:
            iid = int(parts[0])
            q = tuple(float(x) for x in parts[1:5])
            t = tuple(float(x) for x in parts[5:8])
            cid, name = int(parts[8]), parts[9]
        except (IndexError, ValueError):
            raise FormatError(f"{path}: cannot parse image line {line!r}") from None
        images[iid] = {"qvec": q, "tvec": t, "camera_id": cid, "name": name}
        i += 2  # skip the points2D line
    return images


def read_points3d_txt(path: Path) -> np.ndarray:
    pts = []
    for line in _lines(path):
        parts = line.split()
        try:
            pts.append([float(x) for x in parts[1:4]])
        except ValueError:
            raise FormatError(f"{path}: cannot parse point line {line!r}") from None
    return np.array(pts, dtype=np.float64).reshape(-1, 3)


def find_model(src: Path) -> Path:
    for cand in (src, src / "sparse" / "0", src / "sparse"):
        if any((cand / f"cameras{ext}").is_file() for ext in (".bin", ".txt")):
            return cand
    raise FileNotFoundError(f"{src}: no COLMAP model (cameras.bin/.txt) here or in sparse/0, sparse/")


def read_model(model_dir: Path) -> tuple[dict, dict, np.ndarray | None]:
    """Read ``cameras``, ``images`` and (optional) ``points3D`` from a model directory."""
    if (model_dir / "cameras.bin").is_file():
        cams = read_cameras_bin(model_dir / "cameras.bin")
        imgs = read_images_bin(model_dir / "images.bin")
        p = model_dir / "points3D.bin"
        pts = read_points3d_bin(p) if p.is_file() else None
    else:
        cams = read_cameras_txt(model_dir / "cameras.txt")
        imgs = read_images_txt(model_dir / "images.txt")
        p = model_dir / "points3D.txt"
        pts = read_points3d_txt(p) if p.is_file() else None
    return cams, imgs, pts


def _find_images(src: Path, model_dir: Path, images: str | Path | None) -> Path:
    if images is not None:
        d = Path(images)
        if not d.is_dir():
            raise FileNotFoundError(f"{d}: image directory not found")
        return d
    for cand in (
        src / "images",
        model_dir / "images",
        model_dir.parent / "images",
        model_dir.parent.parent / "images",
    ):
        if cand.is_dir():
            return cand
    raise FileNotFoundError(f"{src}: no images/ directory found; pass images=DIR (--images)")


def convert_colmap(
    src: str | Path, dst: str | Path, *, overwrite: bool = False, images: str | Path | None = None, **_: Any
) -> Path:
    """Convert a COLMAP sparse model into a one-frame clip (one camera per registered image)."""
    src = Path(src)
    model_dir = find_model(src)
    cams, imgs, pts = read_model(model_dir)
    image_dir = _find_images(src, model_dir, images)
    specs, sources, files = [], {}, {}
    for i, (iid, im) in enumerate(sorted(imgs.items(), key=lambda kv: kv[1]["name"])):
        where = f"{model_dir}: image {iid} ({im['name']})"
        if im["camera_id"] not in cams:
            raise FormatError(f"{where}: unknown camera id {im['camera_id']}")
        cam = cams[im["camera_id"]]
        K, dist = camera_matrix(cam["model"], cam["params"], where)
        w2c = pose_from_quat(im["qvec"], im["tvec"], where)
        name = f"img{i:05d}"
        specs.append(CameraSpec(name, K, int(cam["width"]), int(cam["height"]), inv_rigid(w2c)))
        path = image_dir / im["name"]
        if not path.is_file():
            raise FileNotFoundError(f"{path}: image not found ({where})")
        if has_distortion(dist):
            sources[(0, name)] = lambda path=path, K=K, dist=dist: undistort_rgb(read_rgb(path), K, dist)
        else:
            sources[(0, name)] = path
        files[name] = im["name"]
    distorted_png = any(callable(sources[(0, n)]) and Path(files[n]).suffix.lower() == ".png" for n in files)
    if not specs:
        raise FormatError(f"{model_dir}: the model has no registered images")
    lidar = {0: LidarSpec(pts.astype(np.float32), frame="world")} if pts is not None and len(pts) else None
    meta = {"source": {"kind": "colmap", "model": str(model_dir), "images": str(image_dir), "files": files}}
    return write_clip(
        dst,
        specs,
        [FrameSpec(0.0, np.eye(4))],
        sources,
        lidar=lidar,
        metadata=meta,
        image_format="png" if distorted_png else "jpg",  # lossless for lossless sources
        world_frame="poses",
        overwrite=overwrite,
    )
