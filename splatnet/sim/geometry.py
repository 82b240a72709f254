"""Geometry of the driving environment: oriented boxes (intersection, distance) and the logged
path (distance to it, progress along it). Float64 NumPy, metres, world frame."""

from __future__ import annotations

import math

import numpy as np

#: Overlaps thinner than this (metres) are not collisions: rounding must not turn boxes that
#: touch at a face into a crash.
TOUCH_TOLERANCE = 1e-9


def boxes_intersect(pose_a: np.ndarray, size_a, pose_b: np.ndarray, size_b) -> bool:
    """Whether two oriented boxes overlap (by more than :data:`TOUCH_TOLERANCE`).

    Each box is its centre pose ``[4, 4]`` (box-to-world, rigid) and ``(length, width, height)``
    along its own x, y, z. The separating-axis test over the 15 candidate axes (the 3 + 3 face
    normals and their 9 cross products; Gottschalk, Lin and Manocha, "OBBTree", SIGGRAPH 1996):
    the boxes are disjoint exactly when their projections onto one of them do not overlap.
    """
    Ra, Rb = pose_a[:3, :3], pose_b[:3, :3]
    ea, eb = np.asarray(size_a, dtype=np.float64) / 2, np.asarray(size_b, dtype=np.float64) / 2
    R = Ra.T @ Rb                             # b's axes in a's frame
    t = Ra.T @ (pose_b[:3, 3] - pose_a[:3, 3])  # b's centre in a's frame
    absR = np.abs(R)
    # a's face normals, then b's.
    if np.any(np.abs(t) >= ea + absR @ eb - TOUCH_TOLERANCE):
        return False
    if np.any(np.abs(t @ R) >= absR.T @ ea + eb - TOUCH_TOLERANCE):
        return False
    # Cross products a_i × b_j (not unit vectors: the tolerance is scaled by their length; the
    # product of parallel edges is no axis, and the face normals above already cover that case).
    for i in range(3):
        i1, i2 = (i + 1) % 3, (i + 2) % 3
        for j in range(3):
            length = math.sqrt(max(0.0, 1.0 - R[i, j] ** 2))
            if length < 1e-9:
                continue
            j1, j2 = (j + 1) % 3, (j + 2) % 3
            ra = ea[i1] * absR[i2, j] + ea[i2] * absR[i1, j]
            rb = eb[j1] * absR[i, j2] + eb[j2] * absR[i, j1]
            if abs(t[i2] * R[i1, j] - t[i1] * R[i2, j]) >= ra + rb - TOUCH_TOLERANCE * length:
                return False
    return True


def point_box_distance(point: np.ndarray, pose: np.ndarray, size) -> float:
    """Distance (m) from a world ``point [3]`` to the nearest point of an oriented box (0 inside)."""
    local = (np.asarray(point, dtype=np.float64) - pose[:3, 3]) @ pose[:3, :3]
    outside = np.maximum(np.abs(local) - np.asarray(size, dtype=np.float64) / 2, 0.0)
    return float(np.linalg.norm(outside))


class LoggedPath:
    """The polyline through the log's ego positions, for distances and progress along it.

    Args:
        positions: ``[T, 3]`` world positions of the ego origin, one per logged frame (T ≥ 1).
    """

    def __init__(self, positions: np.ndarray) -> None:
        p = np.asarray(positions, dtype=np.float64)
        self.a = p[:-1] if len(p) > 1 else p         # [S, 3] segment starts
        self.d = np.diff(p, axis=0) if len(p) > 1 else np.zeros((1, 3))  # [S, 3]
        lengths = np.linalg.norm(self.d, axis=1)
        self.start = np.concatenate([[0.0], np.cumsum(lengths)[:-1]])  # arc length at each start
        self.length = float(lengths.sum())
        self._lengths = lengths
        self._len2 = np.maximum(lengths ** 2, 1e-18)  # a repeated position is a point

    def project(self, point: np.ndarray) -> tuple[float, float]:
        """``(distance, progress)``: the distance (m) from ``point [3]`` to the path and the arc
        length (m from the path's start) of its nearest point (the first, on ties)."""
        rel = np.asarray(point, dtype=np.float64) - self.a                 # [S, 3]
        u = np.clip(np.einsum("sk,sk->s", rel, self.d) / self._len2, 0.0, 1.0)
        dist = np.linalg.norm(rel - u[:, None] * self.d, axis=1)
        i = int(np.argmin(dist))
        return float(dist[i]), float(self.start[i] + u[i] * self._lengths[i])
