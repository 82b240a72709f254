"""Motion blur over a shutter time, from one render, its depth and per-pixel velocities.

Each pixel sees a surface point ``P`` (from the depth map; a direction for the sky). During the
exposure ``[-T/2, T/2]`` around the frame time the camera moves (``pose_at(τ)``) and the point
moves with its object (``velocity``), so its image follows a path ``q(τ)``. With the flow field
locally constant, what pixel ``q`` integrates is the sharp image at ``q - (q(τ) - q)``, averaged
over ``τ`` (the "velocity buffer" method of real-time renderers). The sample count follows the
longest path (about one sample per pixel of motion), so blur never breaks into copies.
Occlusion changes during the exposure are ignored (a foreground edge does not smear over the
background), which is the method's known limit.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``img [H, W, C]`` at continuous pixel coordinates (centres at +0.5), edges clamped."""
    h, w = img.shape[:2]
    x = np.clip(x - 0.5, 0.0, w - 1.0)
    y = np.clip(y - 0.5, 0.0, h - 1.0)
    x0 = np.minimum(np.floor(x).astype(np.int64), w - 2) if w > 1 else np.zeros(x.shape, np.int64)
    y0 = np.minimum(np.floor(y).astype(np.int64), h - 2) if h > 1 else np.zeros(y.shape, np.int64)
    fx = (x - x0)[..., None].astype(np.float32)
    fy = (y - y0)[..., None].astype(np.float32)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
    bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def motion_blur(
    img: np.ndarray,
    depth: np.ndarray,
    velocity: np.ndarray,
    K: np.ndarray,
    pose_at: Callable[[float], np.ndarray],
    exposure_time: float,
    max_samples: int = 32,
) -> np.ndarray:
    """Blurred ``img [H, W, 3]``.

    Args:
        depth: ``[H, W]`` camera-z of each pixel's surface; ``inf`` where it sees the sky.
        velocity: ``[H, W, 3]`` world velocity (m/s) of that surface (0 for static ones).
        K: ``[3, 3]`` intrinsics in pixels.
        pose_at: camera-to-world ``[4, 4]`` (OpenCV camera) at a time offset from the frame.
        exposure_time: shutter time in seconds, centred on the frame time.
    """
    h, w = depth.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    ray = np.stack([(xs - K[0, 2]) / K[0, 0], (ys - K[1, 2]) / K[1, 1], np.ones_like(xs)], -1)
    finite = np.isfinite(depth)
    T0 = pose_at(0.0)
    p_cam = ray * np.where(finite, depth, 1.0)[..., None]
    world = p_cam @ T0[:3, :3].T  # directions for the sky ...
    world[finite] += T0[:3, 3]  # ... points elsewhere
    vel = np.where(finite[..., None], velocity, 0.0)

    def image_of(tau: float) -> tuple[np.ndarray, np.ndarray]:
        T = pose_at(tau)
        q = world + vel * tau
        q[finite] -= T[:3, 3]
        c = q @ T[:3, :3]  # world -> camera: R^T q, as a row-vector product
        ok = c[..., 2] > 1e-3
        z = np.where(ok, c[..., 2], 1.0)
        u = np.where(ok, K[0, 0] * c[..., 0] / z + K[0, 2], xs)
        v = np.where(ok, K[1, 1] * c[..., 1] / z + K[1, 2], ys)
        return u, v

    half = 0.5 * exposure_time
    (u0, v0), (u1, v1) = image_of(-half), image_of(half)
    path = np.hypot(u1 - u0, v1 - v0)
    n = int(np.clip(np.ceil(path.max()) + 1, 2, max_samples))
    acc = np.zeros_like(img, dtype=np.float32)
    for k in range(n):
        tau = exposure_time * ((k + 0.5) / n - 0.5)
        u, v = image_of(tau)
        acc += _bilinear(img, 2.0 * xs - u, 2.0 * ys - v)
    return (acc / n).astype(np.float32)
