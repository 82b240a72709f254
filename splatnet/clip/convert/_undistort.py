"""Undistortion of OpenCV ``k1 k2 p1 p2`` (Brown-Conrady) images at conversion time (kornia)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from splatnet.clip._files import encode_image, read_rgb


def has_distortion(dist: np.ndarray) -> bool:
    return bool(np.any(np.asarray(dist) != 0))


def undistort_rgb(rgb: np.ndarray, K: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Resample ``rgb`` (uint8 ``[H, W, 3]``) to the pinhole camera ``K`` with no distortion.

    ``dist`` is OpenCV's ``(k1, k2, p1, p2[, k3])``. The output keeps ``K`` and the image size
    (pixels whose source falls outside the input are black), like ``cv2.undistort``.
    """
    from kornia.geometry.calibration import undistort_image

    img = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].double() / 255.0
    # kornia (like OpenCV) puts pixel centres at integer coordinates; splatnet, COLMAP and
    # nerfstudio at +0.5. Shifting the principal point converts between the two.
    k = torch.from_numpy(np.asarray(K, dtype=np.float64).copy())[None]
    k[:, 0, 2] -= 0.5
    k[:, 1, 2] -= 0.5
    d = torch.from_numpy(np.asarray(dist, dtype=np.float64).reshape(-1))[None]
    with torch.no_grad():
        out = undistort_image(img, k, d)
    out = (out[0].permute(1, 2, 0).clamp(0, 1) * 255.0).round().to(torch.uint8)
    return out.numpy()


def undistorted_image_producer(path: Path, K: np.ndarray, dist: np.ndarray):
    """An image source for ``write_clip``: the undistorted pixels of ``path`` as an array."""
    return undistort_rgb(read_rgb(path), K, dist)


__all__ = ["encode_image", "has_distortion", "undistort_rgb", "undistorted_image_producer"]
