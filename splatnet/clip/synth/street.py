"""The street's centre line: a circular arc (or a straight line) in the ground plane.

Street coordinates are ``(s, d)``: arc length along the centre line and signed lateral offset
(positive to the left of the driving direction). The scene frame is z-up with the centre line
starting at the origin heading along +x. Heights are z.
"""

from __future__ import annotations

import numpy as np


class Centerline:
    """Arc of signed curvature ``kappa`` (1/m; 0 = straight) through the origin along +x."""

    def __init__(self, kappa: float):
        self.kappa = float(kappa)

    def heading(self, s) -> np.ndarray:
        return self.kappa * np.asarray(s, dtype=np.float64)

    def point(self, s, d=0.0) -> np.ndarray:
        """World ``[..., 3]`` points (z = 0) at street coordinates ``(s, d)``."""
        s = np.asarray(s, dtype=np.float64)
        d = np.asarray(d, dtype=np.float64)
        s, d = np.broadcast_arrays(s, d)
        k = self.kappa
        th = k * s
        if k == 0.0:
            x, y = s.copy(), np.zeros_like(s)
        else:
            x, y = np.sin(th) / k, (1.0 - np.cos(th)) / k
        x = x - d * np.sin(th)
        y = y + d * np.cos(th)
        return np.stack([x, y, np.zeros_like(x)], axis=-1)

    def frame(self, s) -> tuple[np.ndarray, np.ndarray]:
        """Unit tangent and left normal ``[..., 3]`` at ``s``."""
        th = self.heading(s)
        c, sn = np.cos(th), np.sin(th)
        z = np.zeros_like(th)
        return np.stack([c, sn, z], -1), np.stack([-sn, c, z], -1)

    def to_street(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Inverse of :meth:`point` for ground-plane points ``p [N, >=2]``: ``(s, d)``."""
        x = p[:, 0].astype(np.float64)
        y = p[:, 1].astype(np.float64)
        k = self.kappa
        if k == 0.0:
            return x, y
        r = 1.0 / k
        sg = 1.0 if k > 0 else -1.0
        vx, vy = x, y - r  # relative to the centre of curvature (0, r)
        d = r - sg * np.hypot(vx, vy)
        s = np.arctan2(sg * vx, -sg * vy) / k
        return s, d

    def pose(self, s: float, d: float, yaw_offset: float = 0.0, z: float = 0.0) -> np.ndarray:
        """4×4 pose at ``(s, d)``: x along the street (plus ``yaw_offset``), z up."""
        th = float(self.heading(s)) + yaw_offset
        T = np.eye(4)
        c, sn = np.cos(th), np.sin(th)
        T[:3, :3] = [[c, -sn, 0.0], [sn, c, 0.0], [0.0, 0.0, 1.0]]
        T[:3, 3] = self.point(s, d)
        T[2, 3] = z
        return T
