"""Ray casting the street with open3d and shading the hits.

One :class:`SceneMeshes` per clip holds the triangles (static objects already in the scene frame,
moving cars and pedestrians in their local frames); :meth:`SceneMeshes.at` poses the movers at a
time and builds an ``open3d.t.geometry.RaycastingScene``. Rays are cast in the z-up scene frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from splatnet.clip.synth import materials as M
from splatnet.clip.synth.layout import Layout
from splatnet.clip.synth.meshes import Mesh
from splatnet.clip.synth.noise import Noise, mix


def rotate(v: np.ndarray, R: np.ndarray) -> np.ndarray:
    """``v @ R.T`` for many vectors ``v [N, 3]`` without BLAS (whose threads thrash on a busy
    2-core machine for these skinny products)."""
    return v[:, 0:1] * R[:, 0] + v[:, 1:2] * R[:, 1] + v[:, 2:3] * R[:, 2]


def _o3d():
    from splatnet._optional import require  # lazy: open3d takes ~0.5 s to import

    return require("open3d", "the synthetic clip generator (splatnet synth)", extra="open3d")


class SceneMeshes:
    """All triangles of a layout with per-triangle material, object and texture frame.

    ``hidden``: indices of layout objects left out of the scene (a clip "without" those
    actors); every other object keeps its index, so its shading and textures are unchanged.
    """

    def __init__(self, layout: Layout, hidden: frozenset[int] = frozenset()):
        self.layout = layout
        static, dynamic = [], []
        for i, o in enumerate(layout.objects):
            if i not in hidden:
                (dynamic if o.dynamic else static).append(i)
        self.order = static + dynamic
        meshes = [layout.objects[i].mesh for i in self.order]
        local = Mesh.concat(meshes)  # texture frames stay in object-local coordinates
        counts = [m.num_triangles for m in meshes]
        self.tri_obj = np.repeat(np.array(self.order), counts).astype(np.int32)  # [F]
        self.tri_mat = local.material  # [F]
        self.uv_origin = local.uv_origin.astype(np.float32)
        self.uv_u = local.uv_u.astype(np.float32)
        self.uv_v = local.uv_v.astype(np.float32)
        self.uv_size = local.uv_size.astype(np.float32)
        self.triangles = local.triangles.astype(np.uint32)
        # Per-corner shading normals [F, 3, 3] (local frame) of curved surfaces; flat: None.
        self.smooth: np.ndarray | None = None
        self.smooth_tri = np.zeros(len(self.tri_mat), bool)  # [F] triangle is curved
        if local.vertex_normals is not None:
            self.smooth = local.vertex_normals[local.triangles].astype(np.float32)
            self.smooth_tri = np.all(np.any(self.smooth != 0, axis=2), axis=1)
        self.dynamic = dynamic
        self._static_vertices = np.concatenate(
            [layout.objects[i].mesh.transformed(layout.objects[i].pose).vertices for i in static]
        )
        self._dyn_local = [layout.objects[i].mesh.vertices for i in dynamic]
        self.colors = np.stack([o.color for o in layout.objects]).astype(np.float32)  # [O, 3]
        self.colors2 = np.stack([o.color2 for o in layout.objects]).astype(np.float32)
        self.params = np.stack([o.params for o in layout.objects]).astype(np.float32)  # [O, 8]
        self.variant = np.array([o.variant for o in layout.objects], dtype=np.int32)

    def poses(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Per-object local-to-scene rotations ``[O, 3, 3]`` and translations ``[O, 3]``."""
        T = np.stack([self.layout.object_pose(i, t) for i in range(len(self.layout.objects))])
        return T[:, :3, :3], T[:, :3, 3]

    def at(self, t: float) -> FrameScene:
        R, tr = self.poses(t)
        verts = [self._static_vertices]
        for i, v in zip(self.dynamic, self._dyn_local):
            verts.append(v @ R[i].T + tr[i])
        vertices = np.concatenate(verts).astype(np.float32)
        o3d = _o3d()
        scene = o3d.t.geometry.RaycastingScene()
        scene.add_triangles(o3d.core.Tensor(vertices), o3d.core.Tensor(self.triangles))
        return FrameScene(self, scene, t, R.astype(np.float32), tr.astype(np.float32))


@dataclass
class Hits:
    t: np.ndarray  # [N] ray parameter (inf: no hit)
    prim: np.ndarray  # [N] triangle index (valid where hit)
    normal: np.ndarray  # [N, 3] geometric normal in the scene frame
    bary: np.ndarray  # [N, 2] barycentric (u, v) of the hit: p = (1-u-v) A + u B + v C

    @property
    def hit(self) -> np.ndarray:
        return np.isfinite(self.t)


@dataclass
class FrameScene:
    meshes: SceneMeshes
    scene: object  # open3d RaycastingScene
    time: float
    R: np.ndarray
    tr: np.ndarray

    def cast(self, origins: np.ndarray, dirs: np.ndarray) -> Hits:
        o3d = _o3d()
        rays = np.concatenate([np.broadcast_to(origins, dirs.shape), dirs], axis=1)
        ans = self.scene.cast_rays(o3d.core.Tensor(rays.astype(np.float32)))
        return Hits(ans["t_hit"].numpy(), ans["primitive_ids"].numpy().astype(np.int64),
                    ans["primitive_normals"].numpy(), ans["primitive_uvs"].numpy())

    def occluded(self, origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        o3d = _o3d()
        rays = np.concatenate([origins, np.broadcast_to(dirs, origins.shape)], axis=1)
        return self.scene.test_occlusions(o3d.core.Tensor(rays.astype(np.float32))).numpy()


def shade(
    frame: FrameScene,
    noise: Noise,
    origin: np.ndarray,
    dirs: np.ndarray,
    hits: Hits,
    pixel_angle: np.ndarray,
    shadows: bool = True,
) -> np.ndarray:
    """Colours ``[N, 3]`` in [0, 1] of rays ``origin + t·dirs`` (dirs need not be unit).

    ``origin`` is ``[N, 3]`` or ``[3]``; ``pixel_angle [N]`` is the angle one pixel subtends.
    """
    lay = frame.meshes.layout
    m = frame.meshes
    n_rays = dirs.shape[0]
    norm = np.linalg.norm(dirs, axis=1)
    unit = (dirs / norm[:, None]).astype(np.float32)
    out = np.empty((n_rays, 3), np.float32)
    hit = hits.hit
    miss = ~hit
    out[miss] = sky_color(lay, noise, unit[miss])
    idx = np.nonzero(hit)[0]
    if idx.size == 0:
        return out
    prim = hits.prim[idx]
    ray = unit[idx]
    dist = (hits.t[idx] * norm[idx]).astype(np.float32)
    org = np.broadcast_to(origin, dirs.shape)[idx]
    pw = (org + ray * dist[:, None]).astype(np.float32)
    nw = hits.normal[idx]
    nw = np.where((np.sum(nw * ray, 1) > 0)[:, None], -nw, nw).astype(np.float32)
    obj = m.tri_obj[prim]
    mat = m.tri_mat[prim]
    Ro, to = frame.R[obj], frame.tr[obj]
    # Scene → object-local: R^T (p - t), written as a row-vector product.
    pl = np.einsum("ni,nij->nj", pw - to, Ro)
    nl = np.einsum("ni,nij->nj", nw, Ro)
    rl = np.einsum("ni,nij->nj", ray, Ro)
    rel = pl - m.uv_origin[prim]
    au, av = m.uv_u[prim], m.uv_v[prim]
    u = np.sum(rel * au, 1)
    v = np.sum(rel * av, 1)
    size = m.uv_size[prim]
    objs = M.ObjectTable(m.colors, m.colors2, m.params, m.variant)
    albedo = np.empty((idx.size, 3), np.float32)
    pix = (dist * pixel_angle[idx]).astype(np.float32)
    order = np.argsort(mat, kind="stable")
    bounds = np.flatnonzero(np.diff(mat[order])) + 1
    for sel in np.split(order, bounds):
        s = M.Surface(
            pl[sel],
            nl[sel],
            rl[sel],
            pw[sel],
            u[sel],
            v[sel],
            size[sel, 0],
            size[sel, 1],
            au[sel],
            av[sel],
            obj[sel],
            pix[sel],
        )
        albedo[sel] = M.shade(int(mat[sel[0]]), s, noise, objs, lay.look)
    ns = _shading_normals(m, hits.bary[idx], prim, Ro, nw)
    sun = lay.sun_dir.astype(np.float32)
    cos_sun = np.clip(np.sum(ns * sun, axis=1), 0.0, None)
    if shadows:
        lit = np.nonzero(cos_sun > 0)[0]
        # Offset along the normal so the shadow ray does not hit its own triangle.
        occ = frame.occluded(pw[lit] + nw[lit] * 0.02, sun[None])
        cos_sun[lit[occ]] = 0.0
    light = (
        lay.ambient[None].astype(np.float32) * (0.75 + 0.25 * ns[:, 2:3])
        + lay.sun_color[None].astype(np.float32) * cos_sun[:, None]
    )
    # Aerial perspective: distant surfaces fade towards the horizon colour.
    haze = (1.0 - np.exp(-dist / lay.haze_distance))[:, None]
    out[idx] = albedo * light * (1.0 - haze) + lay.sky_horizon.astype(np.float32)[None] * haze
    return np.clip(out, 0.0, 1.0)


def _shading_normals(m: SceneMeshes, bary: np.ndarray, prim: np.ndarray, R: np.ndarray,
                     nw: np.ndarray) -> np.ndarray:
    """Interpolated vertex normals on curved triangles, else the geometric normal ``nw``.

    Both face the viewer. ``R [N, 3, 3]`` rotates each hit's object frame to the scene.
    """
    ns = nw.copy()
    if m.smooth is None:
        return ns
    k = np.nonzero(m.smooth_tri[prim])[0]
    if k.size == 0:
        return ns
    corner = m.smooth[prim[k]]  # [K, 3, 3] local
    b = bary[k]
    w = np.stack([1.0 - b[:, 0] - b[:, 1], b[:, 0], b[:, 1]], axis=1)  # [K, 3]
    nl = np.sum(corner * w[:, :, None], axis=1)
    n = np.einsum("nij,nj->ni", R[k], nl)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)
    n = np.where((np.sum(n * nw[k], axis=1) < 0)[:, None], -n, n)
    ns[k] = n
    return ns


def sky_color(lay: Layout, noise: Noise, d: np.ndarray) -> np.ndarray:
    """Sky seen along unit scene-frame directions ``d [N, 3]``: gradient, sun glow, clouds."""
    if d.shape[0] == 0:
        return np.zeros((0, 3), np.float32)
    z = d[:, 2]
    g = np.sqrt(np.clip(z, 0.0, 1.0))
    col = mix(lay.sky_horizon.astype(np.float32), lay.sky_zenith.astype(np.float32), g)
    if lay.cloud_cover > 0:
        up = np.maximum(z, 0.02)
        q = np.stack([d[:, 0] / up, d[:, 1] / up, np.zeros_like(z)], 1) * 0.8
        c = noise.fbm(q, 1.0, 4)
        dens = np.clip((c - (1.0 - lay.cloud_cover)) / 0.25, 0.0, 1.0) * np.clip(z * 6.0, 0.0, 1.0)
        col = mix(col, np.array([0.9, 0.9, 0.92], np.float32) * (0.8 + 0.3 * c[:, None]), dens)
    cs = np.sum(d * lay.sun_dir.astype(np.float32), axis=1)
    glow = 1.2 * np.exp((cs - 1.0) * 400.0) + 0.25 * np.exp((cs - 1.0) * 10.0)
    col = col + lay.sun_color[None].astype(np.float32) * glow[:, None]
    return np.clip(col, 0.0, 1.0).astype(np.float32)
