"""nerfstudio / Blender ``transforms.json`` → splatnet clip.

Input: a directory holding ``transforms.json`` (or the file itself). Image paths are relative to
that directory; absolute paths and ``..`` are accepted here because the *source* is the user's
own dataset (the clip written is self-contained and obeys the clip path rules).

Layout: a nerfstudio capture is a static scene photographed from many places, so **every image
becomes its own camera** (``img00000``, ``img00001``, … in file order, ``cam_to_ego`` = the
image's pose) in **a single frame** at ``t = 0`` with the identity ego pose: all views see one
instant of a static world, and per-image intrinsics and sizes are natural. ``world_frame`` is
``"poses"``, so camera poses stay in the transforms' own world frame and units.
``metadata.source.files`` maps camera names to the source file paths.

Conventions: ``transform_matrix`` is camera-to-world in the OpenGL/Blender camera frame (+x
right, +y up, −z forward); it becomes OpenCV by flipping the rotation's y and z columns.
Intrinsics ``fl_x fl_y cx cy w h`` (``camera_angle_x`` for Blender scenes) come from the top
level or per frame (per-frame values win). ``camera_model`` ``PINHOLE`` or ``OPENCV``
(``k1 k2 p1 p2``, optional ``k3``): distorted images are undistorted at conversion with kornia to
the same ``K`` and size (pixels with no source are black) and written as PNG for PNG inputs, JPEG
otherwise; undistorted inputs are copied byte for byte. Fisheye and equirectangular models are
rejected. A per-frame ``mask_path`` becomes that camera's validity mask. ``depth_file_path`` is
ignored (its unit is dataset-specific).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from splatnet.cameras import opengl_to_opencv
from splatnet.clip._checks import check_rigid
from splatnet.clip._files import probe_image, read_mask, read_rgb
from splatnet.clip.convert._undistort import has_distortion, undistort_rgb
from splatnet.clip.writer import CameraSpec, FrameSpec, write_clip
from splatnet.errors import FormatError, ValidationError

_DIST_KEYS = ("k1", "k2", "p1", "p2", "k3")
_SUPPORTED_MODELS = ("PINHOLE", "OPENCV", "SIMPLE_PINHOLE")


def _find(src: Path) -> Path:
    if src.is_file():
        return src
    path = src / "transforms.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: transforms.json not found")
    return path


def _image_path(base: Path, file_path: str, where: str) -> Path:
    p = base / file_path
    if p.is_file():
        return p
    for ext in (".png", ".jpg", ".jpeg"):  # Blender scenes omit the extension
        q = p.with_name(p.name + ext)
        if q.is_file():
            return q
    raise FileNotFoundError(f"{p}: image not found ({where})")


def read_transforms(src: str | Path) -> dict[str, Any]:
    """Parse ``transforms.json`` into per-image K, distortion, size and OpenCV cam_to_world."""
    path = _find(Path(src))
    base = path.parent
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"{path}: not valid JSON ({e})") from None
    frames = meta.get("frames") if isinstance(meta, dict) else None
    if not isinstance(frames, list) or not frames:
        raise FormatError(f"{path}: expected a non-empty 'frames' list")
    out = []
    for i, fr in enumerate(frames):
        w = f"{path}: frames[{i}]"
        if not isinstance(fr, dict) or "file_path" not in fr or "transform_matrix" not in fr:
            raise FormatError(f"{w}: needs 'file_path' and 'transform_matrix'")

        def get(key: str, fr: dict = fr) -> Any:
            return fr.get(key, meta.get(key))

        model = get("camera_model") or ("OPENCV" if any(get(k) for k in _DIST_KEYS) else "PINHOLE")
        if model not in _SUPPORTED_MODELS:
            raise ValidationError(
                f"{w}: camera_model {model!r} not supported (supported: {list(_SUPPORTED_MODELS)})"
            )
        img = _image_path(base, str(fr["file_path"]), w)
        info = probe_image(img)
        width = int(get("w") or info.width)
        height = int(get("h") or info.height)
        if (width, height) != (info.width, info.height):
            raise ValidationError(f"{w}: w x h = {width}x{height} but {img} is {info.width}x{info.height}")
        fx, fy = get("fl_x"), get("fl_y")
        if fx is None and get("camera_angle_x") is not None:
            fx = 0.5 * width / math.tan(0.5 * float(get("camera_angle_x")))
        if fy is None and get("camera_angle_y") is not None:
            fy = 0.5 * height / math.tan(0.5 * float(get("camera_angle_y")))
        if fx is None:
            raise FormatError(f"{w}: no focal length (fl_x or camera_angle_x)")
        fy = fx if fy is None else fy
        cx = get("cx") if get("cx") is not None else width / 2.0
        cy = get("cy") if get("cy") is not None else height / 2.0
        K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)
        dist = np.array([float(get(k) or 0.0) for k in _DIST_KEYS])
        if model != "OPENCV" and has_distortion(dist):
            raise ValidationError(f"{w}: distortion coefficients given with camera_model {model!r}")
        c2w_gl = np.asarray(fr["transform_matrix"], dtype=np.float64)
        if c2w_gl.shape == (3, 4):
            c2w_gl = np.vstack([c2w_gl, [0.0, 0.0, 0.0, 1.0]])
        c2w_gl = check_rigid(c2w_gl, f"{w}.transform_matrix")
        c2w = opengl_to_opencv(torch.from_numpy(c2w_gl)).numpy()
        mask = None
        if fr.get("mask_path"):
            mask = base / str(fr["mask_path"])
            if not mask.is_file():
                raise FileNotFoundError(f"{mask}: mask not found ({w}.mask_path)")
        out.append(
            {
                "path": img,
                "format": info.format,
                "K": K,
                "dist": dist,
                "width": width,
                "height": height,
                "cam_to_world": c2w,
                "mask": mask,
                "file_path": str(fr["file_path"]),
            }
        )
    return {"path": path, "meta": meta, "images": out}


def convert_nerfstudio(src: str | Path, dst: str | Path, *, overwrite: bool = False, **_: Any) -> Path:
    """Convert a nerfstudio ``transforms.json`` capture into a one-frame clip (one camera per image)."""
    ts = read_transforms(src)
    cams, images, masks, files = [], {}, {}, {}
    for i, im in enumerate(ts["images"]):
        name = f"img{i:05d}"
        cams.append(CameraSpec(name, im["K"], im["width"], im["height"], im["cam_to_world"]))
        files[name] = im["file_path"]
        if has_distortion(im["dist"]):
            images[(0, name)] = lambda im=im: undistort_rgb(
                read_rgb(im["path"]), im["K"], im["dist"][:4] if im["dist"][4] == 0 else im["dist"]
            )
        else:
            images[(0, name)] = im["path"]
        if im["mask"] is not None:
            masks[name] = read_mask(im["mask"])
    distorted_png = any(has_distortion(im["dist"]) and im["format"] == "png" for im in ts["images"])
    meta = {
        "source": {
            "kind": "nerfstudio",
            "transforms": str(ts["path"]),
            "files": files,
            "applied_transform": ts["meta"].get("applied_transform"),
        }
    }
    return write_clip(
        dst,
        cams,
        [FrameSpec(0.0, np.eye(4))],
        images,
        masks=masks,
        metadata=meta,
        image_format="png" if distorted_png else "jpg",
        world_frame="poses",
        overwrite=overwrite,
    )
