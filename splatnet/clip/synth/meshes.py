"""Triangle meshes with per-triangle material ids and texture frames.

Each triangle carries a planar texture frame (``uv_origin``, unit axes ``uv_u``/``uv_v`` and the
face extent ``uv_size``) in its object's local coordinates: a material evaluates
``u = (p - o)·a_u``, ``v = (p - o)·a_v`` at the hit point to place windows, lights or hub caps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Mesh:
    vertices: np.ndarray  # [V, 3] float64
    triangles: np.ndarray  # [F, 3] int64
    material: np.ndarray  # [F] int16
    uv_origin: np.ndarray  # [F, 3]
    uv_u: np.ndarray  # [F, 3]
    uv_v: np.ndarray  # [F, 3]
    uv_size: np.ndarray  # [F, 2]
    # [V, 3] shading normals of curved surfaces (zero rows: flat-shaded), or None: all flat.
    vertex_normals: np.ndarray | None = None

    @property
    def num_triangles(self) -> int:
        return int(self.triangles.shape[0])

    def transformed(self, T: np.ndarray) -> Mesh:
        """The mesh moved by the 4×4 rigid transform ``T`` (texture frames move along)."""
        R, t = T[:3, :3], T[:3, 3]
        return Mesh(
            self.vertices @ R.T + t,
            self.triangles,
            self.material,
            self.uv_origin @ R.T + t,
            self.uv_u @ R.T,
            self.uv_v @ R.T,
            self.uv_size,
            None if self.vertex_normals is None else self.vertex_normals @ R.T,
        )

    @staticmethod
    def concat(meshes: list[Mesh]) -> Mesh:
        offsets = np.cumsum([0] + [m.vertices.shape[0] for m in meshes[:-1]])
        return Mesh(
            np.concatenate([m.vertices for m in meshes]),
            np.concatenate([m.triangles + o for m, o in zip(meshes, offsets)]),
            np.concatenate([m.material for m in meshes]),
            np.concatenate([m.uv_origin for m in meshes]),
            np.concatenate([m.uv_u for m in meshes]),
            np.concatenate([m.uv_v for m in meshes]),
            np.concatenate([m.uv_size for m in meshes]),
            _concat_normals(meshes),
        )


def _concat_normals(meshes: list[Mesh]) -> np.ndarray | None:
    if all(m.vertex_normals is None for m in meshes):
        return None
    return np.concatenate([np.zeros_like(m.vertices) if m.vertex_normals is None
                           else m.vertex_normals for m in meshes])


def quads(corners: np.ndarray, material) -> Mesh:
    """Quads from corners ``[Q, 4, 3]`` (o, o+a, o+a+b, o+b); texture frame u along a, v along b."""
    q = corners.shape[0]
    a = corners[:, 1] - corners[:, 0]
    b = corners[:, 3] - corners[:, 0]
    la = np.linalg.norm(a, axis=1, keepdims=True)
    lb = np.linalg.norm(b, axis=1, keepdims=True)
    base = 4 * np.arange(q)[:, None]
    tris = np.concatenate([base + [0, 1, 2], base + [0, 2, 3]], axis=1).reshape(-1, 3)
    rep = lambda x: np.repeat(x, 2, axis=0)  # noqa: E731 - two triangles per quad
    mat = np.broadcast_to(np.asarray(material, dtype=np.int16), (q,))
    return Mesh(
        corners.reshape(-1, 3).astype(np.float64),
        tris.astype(np.int64),
        rep(mat).copy(),
        rep(corners[:, 0]),
        rep(a / np.maximum(la, 1e-12)),
        rep(b / np.maximum(lb, 1e-12)),
        rep(np.concatenate([la, lb], axis=1)),
    )


# Face order of ``box``: +x (front), -x (back), +y (left), -y (right), +z (top), -z (bottom).
FRONT, BACK, LEFT, RIGHT, TOP, BOTTOM = range(6)


def box(size, center=(0.0, 0.0, 0.0), materials=0, bottom: bool = True,
        taper: tuple[float, float] = (0.0, 0.0)) -> Mesh:
    """Axis-aligned box of ``size (lx, ly, lz)`` whose bottom face centre is ``center``.

    ``materials`` is one id or six (one per face, order above). Side faces get u horizontal
    (left to right seen from outside) and v up from the bottom edge; top/bottom u = x, v = y.
    ``taper = (front, back)`` pulls the top face's +x / -x edges inwards by those lengths (a
    car cabin with sloped windscreens); the ±y faces become trapezoids whose v stays vertical.
    """
    lx, ly, lz = (float(v) for v in size)
    cx, cy, cz = (float(v) for v in center)
    x0, x1, y0, y1, z0, z1 = cx - lx / 2, cx + lx / 2, cy - ly / 2, cy + ly / 2, cz, cz + lz
    t0, t1 = x0 + taper[1], x1 - taper[0]  # top face x range
    P = np.array
    faces = [
        [P([x1, y0, z0]), P([x1, y1, z0]), P([t1, y1, z1]), P([t1, y0, z1])],  # +x
        [P([x0, y1, z0]), P([x0, y0, z0]), P([t0, y0, z1]), P([t0, y1, z1])],  # -x
        [P([x1, y1, z0]), P([x0, y1, z0]), P([t0, y1, z1]), P([t1, y1, z1])],  # +y
        [P([x0, y0, z0]), P([x1, y0, z0]), P([t1, y0, z1]), P([t0, y0, z1])],  # -y
        [P([t0, y0, z1]), P([t1, y0, z1]), P([t1, y1, z1]), P([t0, y1, z1])],  # +z
        [P([x0, y1, z0]), P([x1, y1, z0]), P([x1, y0, z0]), P([x0, y0, z0])],  # -z
    ]
    mats = np.broadcast_to(np.asarray(materials, dtype=np.int16), (6,))
    keep = list(range(6 if bottom else 5))
    m = quads(np.array([faces[i] for i in keep]), mats[keep])
    if taper != (0.0, 0.0):
        # Trapezoid sides: keep v vertical with the face's height as its extent.
        for f in (LEFT, RIGHT):
            m.uv_v[2 * f: 2 * f + 2] = [0.0, 0.0, 1.0]
            m.uv_size[2 * f: 2 * f + 2, 1] = lz
    return m


def cylinder(
    radius: float, z0: float, z1: float, segments: int, material, cap_material=None, caps: bool = True
) -> Mesh:
    """Vertical cylinder around the z axis; side u = arc length, caps u/v = x/y from the axis."""
    ang = np.linspace(0.0, 2.0 * np.pi, segments + 1)
    ring = np.stack([radius * np.cos(ang), radius * np.sin(ang)], -1)  # [S+1, 2]
    lo = np.concatenate([ring, np.full((segments + 1, 1), z0)], 1)
    hi = np.concatenate([ring, np.full((segments + 1, 1), z1)], 1)
    corners = np.stack([lo[:-1], lo[1:], hi[1:], hi[:-1]], 1)  # [S, 4, 3]
    side = quads(corners, material)
    radial = np.stack([np.cos(ang[:-1]), np.sin(ang[:-1]), np.zeros(segments)], 1)
    radial_next = np.stack([np.cos(ang[1:]), np.sin(ang[1:]), np.zeros(segments)], 1)
    side.vertex_normals = np.stack([radial, radial_next, radial_next, radial], 1).reshape(-1, 3)
    # Shift each face's u origin back by the arc length before it, so u runs round the pole.
    chord = np.linalg.norm(corners[:, 1] - corners[:, 0], axis=1)
    before = np.repeat(np.concatenate([[0.0], np.cumsum(chord)[:-1]]), 2)
    side.uv_origin = side.uv_origin - side.uv_u * before[:, None]
    if not caps:
        return side
    cap_mat = material if cap_material is None else cap_material
    parts = [side]
    for z, flip in ((z1, False), (z0, True)):
        c = np.array([0.0, 0.0, z])
        v = np.concatenate([[c], np.concatenate([ring[:-1], np.full((segments, 1), z)], 1)])
        i = np.arange(segments)
        t = np.stack([np.zeros(segments, int), 1 + i, 1 + (i + 1) % segments], 1)
        if flip:
            t = t[:, [0, 2, 1]]
        parts.append(
            Mesh(
                v,
                t,
                np.full(segments, cap_mat, np.int16),
                np.tile(c, (segments, 1)),
                np.tile([1.0, 0.0, 0.0], (segments, 1)),
                np.tile([0.0, 1.0, 0.0], (segments, 1)),
                np.full((segments, 2), radius),
            )
        )
    return Mesh.concat(parts)


def ellipsoid(
    radii,
    center,
    rings: int,
    segments: int,
    material,
    jitter: float = 0.0,
    rng: np.random.Generator | None = None,
) -> Mesh:
    """UV-sphere ellipsoid; ``jitter`` (fraction of the radius) makes it lumpy (tree crowns)."""
    th = np.linspace(0.0, np.pi, rings + 1)[:, None]
    ph = np.linspace(0.0, 2.0 * np.pi, segments + 1)[None, :-1]
    unit = np.stack(
        np.broadcast_arrays(np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)), -1
    )  # [R+1, S, 3]
    scale = np.ones(unit.shape[:2])
    if jitter and rng is not None:
        scale[1:-1] += jitter * (rng.random((rings - 1, segments)) - 0.5)
    v = unit * scale[..., None] * np.asarray(radii) + np.asarray(center)
    v[0] = v[0, 0]  # poles collapse to one point
    v[-1] = v[-1, 0]
    idx = np.arange((rings + 1) * segments).reshape(rings + 1, segments)
    a, b = idx[:-1], np.roll(idx[:-1], -1, axis=1)
    c, d = idx[1:], np.roll(idx[1:], -1, axis=1)
    tris = np.concatenate([np.stack([a, c, d], -1).reshape(-1, 3), np.stack([a, d, b], -1).reshape(-1, 3)])
    f = tris.shape[0]
    return Mesh(
        v.reshape(-1, 3),
        tris,
        np.full(f, material, np.int16),
        np.tile(np.asarray(center, float), (f, 1)),
        np.tile([1.0, 0.0, 0.0], (f, 1)),
        np.tile([0.0, 0.0, 1.0], (f, 1)),
        np.tile(np.asarray(radii, float)[[0, 2]], (f, 1)),
        # Normals of the smooth ellipsoid (the lumps shade as if round: softer crowns).
        _unit((unit / np.asarray(radii, float)).reshape(-1, 3)),
    )


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def axis_y(m: Mesh, t=(0.0, 0.0, 0.0)) -> Mesh:
    """Turn a z-axis mesh (e.g. a wheel cylinder) so its axis is y, then move it by ``t``."""
    T = np.eye(4)
    T[:3, :3] = [[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]
    T[:3, 3] = t
    return m.transformed(T)
