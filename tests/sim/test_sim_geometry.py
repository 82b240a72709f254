"""Oriented-box intersection and the logged path, against oracles written here."""

from __future__ import annotations

import math

import numpy as np
import pytest

from splatnet.clip.actors import yaw_pose
from splatnet.sim.geometry import LoggedPath, boxes_intersect, point_box_distance

_EDGES = [(i, j) for i in range(8) for j in range(i + 1, 8) if bin(i ^ j).count("1") == 1]


def _corners(pose, size):
    signs = np.array([[(i >> 2) & 1, (i >> 1) & 1, i & 1] for i in range(8)], dtype=float) * 2 - 1
    return (signs * np.asarray(size) / 2) @ pose[:3, :3].T + pose[:3, 3]


def _segment_meets_box(p, q, pose, size):
    """Liang-Barsky clipping of segment p-q against the box's slabs (in the box frame)."""
    a = (p - pose[:3, 3]) @ pose[:3, :3]
    b = (q - pose[:3, 3]) @ pose[:3, :3]
    d, half = b - a, np.asarray(size) / 2
    lo, hi = 0.0, 1.0
    for k in range(3):
        if abs(d[k]) < 1e-15:
            if abs(a[k]) > half[k]:
                return False
            continue
        t1, t2 = sorted(((-half[k] - a[k]) / d[k], (half[k] - a[k]) / d[k]))
        lo, hi = max(lo, t1), min(hi, t2)
        if lo > hi:
            return False
    return True


def _oracle(pa, sa, pb, sb):
    """Two convex solids meet exactly when an edge of one meets the other (every vertex of their
    intersection is a vertex of one inside the other or an edge of one crossing a face)."""
    for P, S, Q, T in ((pa, sa, pb, sb), (pb, sb, pa, sa)):
        c = _corners(P, S)
        if any(_segment_meets_box(c[i], c[j], Q, T) for i, j in _EDGES):
            return True
    return False


def _random_pose(rng, spread):
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    R = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                  [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                  [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, rng.uniform(-spread, spread, 3)
    return T


def test_random_oriented_boxes_agree_with_the_edge_oracle():
    rng = np.random.default_rng(0)
    seen = {True: 0, False: 0}
    for _ in range(1500):
        pa, pb = _random_pose(rng, 3.0), _random_pose(rng, 3.0)
        sa, sb = rng.uniform(0.2, 4.0, 3), rng.uniform(0.2, 4.0, 3)
        # Skip near-touching pairs, where the answer depends on rounding.
        if _oracle(pa, sa * 1.001, pb, sb * 1.001) != _oracle(pa, sa * 0.999, pb, sb * 0.999):
            continue
        want = _oracle(pa, sa, pb, sb)
        assert boxes_intersect(pa, sa, pb, sb) == want
        seen[want] += 1
    assert min(seen.values()) > 300  # both outcomes well represented


def test_edge_to_edge_case_needs_the_cross_product_axes():
    # Two bars turned 45 degrees about their lengths (diamond cross-sections, half-diagonal
    # 0.707), one along x and one along y above it: their top and bottom edges cross, and only
    # x × y, a cross-product axis, separates them when they do not touch.
    c, s = math.cos(math.pi / 4), math.sin(math.pi / 4)
    roll = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    a, b = np.eye(4), yaw_pose(0.0, 0.0, 0.0, math.pi / 2)
    a[:3, :3], b[:3, :3] = roll, b[:3, :3] @ roll
    for dz, want in ((1.5, False), (1.35, True)):  # gap 1.5 - 1.414 > 0; 1.35 - 1.414 < 0
        b[2, 3] = dz
        assert boxes_intersect(a, (10.0, 1.0, 1.0), b, (10.0, 1.0, 1.0)) == want
        assert _oracle(a, (10.0, 1.0, 1.0), b, (10.0, 1.0, 1.0)) == want


def test_touching_faces_do_not_collide():
    a, b = yaw_pose(0.0, 0.0, 0.0, 0.0), yaw_pose(4.0, 0.0, 0.0, 0.0)
    assert not boxes_intersect(a, (4.0, 2.0, 2.0), b, (4.0, 2.0, 2.0))
    b[0, 3] = 3.999
    assert boxes_intersect(a, (4.0, 2.0, 2.0), b, (4.0, 2.0, 2.0))


def test_point_box_distance():
    pose = yaw_pose(10.0, 0.0, 0.0, math.pi / 2)  # 4 long along world y, 2 wide along world x
    assert point_box_distance([10.0, 0.0, 0.0], pose, (4.0, 2.0, 2.0)) == 0.0
    assert point_box_distance([14.0, 0.0, 0.0], pose, (4.0, 2.0, 2.0)) == pytest.approx(3.0)
    assert point_box_distance([14.0, 5.0, 0.0], pose, (4.0, 2.0, 2.0)) == pytest.approx(math.hypot(3, 3))


def test_logged_path_distance_and_progress():
    path = LoggedPath(np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [10.0, 10.0, 0.0]]))
    assert path.length == 20.0
    assert path.project([4.0, 2.0, 0.0]) == pytest.approx((2.0, 4.0))
    assert path.project([12.0, 6.0, 0.0]) == pytest.approx((2.0, 16.0))
    assert path.project([-3.0, 4.0, 0.0]) == pytest.approx((5.0, 0.0))
    assert path.project([10.0, 13.0, 0.0]) == pytest.approx((3.0, 20.0))
    assert LoggedPath(np.zeros((1, 3))).project([3.0, 4.0, 0.0]) == pytest.approx((5.0, 0.0))
