"""Pose helpers shared by the converters (float64 numpy)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from splatnet.errors import ValidationError


def quat_to_rot(q: Sequence[float], where: str) -> np.ndarray:
    """Rotation matrix of a Hamilton quaternion ``(w, x, y, z)`` (normalised first).

    This is the convention of nuScenes, DGP (pyquaternion) and COLMAP: ``q = w + xi + yj + zk``
    rotates vectors by ``v' = q v q*``.
    """
    q = np.asarray(q, dtype=np.float64)
    if q.shape != (4,) or not np.all(np.isfinite(q)):
        raise ValidationError(f"{where}: expected a finite quaternion (w, x, y, z), got {q.tolist()}")
    n = float(np.linalg.norm(q))
    if n < 1e-8 or abs(n - 1.0) > 1e-2:
        raise ValidationError(f"{where}: quaternion norm {n:.6g} is not close to 1")
    w, x, y, z = q / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def pose(R: np.ndarray, t: Sequence[float]) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = np.asarray(t, dtype=np.float64)
    return T


def pose_from_quat(q: Sequence[float], t: Sequence[float], where: str) -> np.ndarray:
    t = np.asarray(t, dtype=np.float64)
    if t.shape != (3,) or not np.all(np.isfinite(t)):
        raise ValidationError(f"{where}: expected a finite translation (x, y, z), got {t.tolist()}")
    return pose(quat_to_rot(q, where), t)


def inv_rigid(T: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = T[:3, :3].T
    out[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return out


def transform_points(T: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ T[:3, :3].T + T[:3, 3]
