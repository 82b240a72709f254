"""Material ids and their procedural albedo shaders.

A shader gets a :class:`Surface` (hit points of one material, in the hit object's local frame,
with texture coordinates and pixel footprints) and returns albedo colours ``[N, 3]`` in [0, 1].
Street materials (road, curb, sidewalk, ground) use street coordinates ``(s, d)``; objects use
their texture frames and local 3D positions, so patterns stick to moving cars.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from splatnet.clip.synth.noise import Noise, box, mix, pulse

ROAD, CURB, SIDEWALK, GROUND, FAR_GROUND = 1, 2, 3, 4, 5
FACADE, ROOF = 6, 7
CAR_BODY, CAR_GLASS, CAR_FRONT, CAR_REAR, WHEEL = 8, 9, 10, 11, 12
POLE, LAMP, SIGN, TRUNK, FOLIAGE = 13, 14, 15, 16, 17
CLOTHES, SKIN = 18, 19
BALCONY, RAILING = 20, 21
NAMES = {
    ROAD: "road",
    CURB: "curb",
    SIDEWALK: "sidewalk",
    GROUND: "ground",
    FAR_GROUND: "far_ground",
    FACADE: "facade",
    ROOF: "roof",
    CAR_BODY: "car_body",
    CAR_GLASS: "car_glass",
    CAR_FRONT: "car_front",
    CAR_REAR: "car_rear",
    WHEEL: "wheel",
    POLE: "pole",
    LAMP: "lamp",
    SIGN: "sign",
    TRUNK: "trunk",
    FOLIAGE: "foliage",
    CLOTHES: "clothes",
    SKIN: "skin",
    BALCONY: "balcony",
    RAILING: "railing",
}
#: Approximate LiDAR reflectivity per material (returned as intensity).
REFLECTIVITY = {
    ROAD: 0.12,
    CURB: 0.35,
    SIDEWALK: 0.3,
    GROUND: 0.25,
    FAR_GROUND: 0.25,
    FACADE: 0.4,
    ROOF: 0.2,
    CAR_BODY: 0.5,
    CAR_GLASS: 0.1,
    CAR_FRONT: 0.6,
    CAR_REAR: 0.6,
    WHEEL: 0.05,
    POLE: 0.45,
    LAMP: 0.5,
    SIGN: 0.9,
    TRUNK: 0.3,
    FOLIAGE: 0.35,
    CLOTHES: 0.3,
    SKIN: 0.3,
    BALCONY: 0.4,
    RAILING: 0.5,
}


@dataclass
class Surface:
    """Hit points of one material. Arrays are ``[N]`` or ``[N, 3]``."""

    p: np.ndarray  # local position
    n: np.ndarray  # local unit normal facing the viewer
    ray: np.ndarray  # local unit ray direction
    p_world: np.ndarray  # scene-frame position
    u: np.ndarray  # texture coordinates (metres) in the triangle's frame
    v: np.ndarray
    su: np.ndarray  # face extent along u / v
    sv: np.ndarray
    axis_u: np.ndarray  # local texture axes [N, 3]
    axis_v: np.ndarray
    obj: np.ndarray  # object index
    pix: np.ndarray  # distance × pixel angle: footprint of a pixel facing the ray

    @cached_property
    def _cos(self) -> np.ndarray:
        """|cos| of the incidence angle, floored (grazing rays)."""
        return np.maximum(np.abs(np.sum(self.n * self.ray, axis=1)), 0.03)

    @cached_property
    def _ray_in_plane(self) -> np.ndarray:
        """Unit direction of the ray projected onto the surface."""
        r = self.ray - self.n * np.sum(self.n * self.ray, axis=1, keepdims=True)
        return r / np.maximum(np.linalg.norm(r, axis=1, keepdims=True), 1e-9)

    def footprint(self, axis: np.ndarray | None = None) -> np.ndarray:
        """Width on the surface covered by one pixel, along ``axis [N, 3]`` (None: isotropic)."""
        cos = self._cos
        if axis is None:
            return (self.pix / np.sqrt(cos)).astype(np.float32)
        # A pixel's footprint is an ellipse stretched by 1/cos along the in-plane ray direction.
        c2 = np.sum(self._ray_in_plane * axis, axis=1) ** 2
        return (self.pix * np.sqrt(c2 / cos**2 + (1.0 - c2))).astype(np.float32)


@dataclass
class ObjectTable:
    """Per-object shading parameters, indexed by object id."""

    color: np.ndarray  # [O, 3]
    color2: np.ndarray  # [O, 3]
    params: np.ndarray  # [O, 8] material-specific numbers
    variant: np.ndarray  # [O] int


@dataclass
class StreetLook:
    """Markings and lateral layout the street materials need."""

    centerline: object
    lane_lines: list  # [(d, kind)] kind: "dash", "solid", "yellow2", "yellow"
    crosswalk: tuple | None  # (s0, s1, d0, d1)
    asphalt: np.ndarray
    paint_white: np.ndarray
    paint_yellow: np.ndarray
    curb: np.ndarray
    sidewalk: np.ndarray
    ground: np.ndarray
    tile: float
    dash: tuple  # (length, period)
    detail: bool = False  # extra wear and variety (asphalt patches, cracks, grime, tints)


def _col(c) -> np.ndarray:
    return np.asarray(c, dtype=np.float32)


def shade(mat: int, s: Surface, noise: Noise, objs: ObjectTable, street: StreetLook) -> np.ndarray:
    fn = _SHADERS[mat]
    out = fn(s, noise, objs, street)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _road(s: Surface, nz: Noise, objs: ObjectTable, st: StreetLook) -> np.ndarray:
    ss, dd = st.centerline.to_street(s.p_world)
    t, nrm = st.centerline.frame(ss)
    fs = s.footprint(t)  # footprint along s
    fd = s.footprint(nrm)  # and across
    fi = s.footprint()
    big = nz.fbm(s.p_world * [1.0, 1.0, 0.0], 0.35, 2, fi)
    grain = nz.fbm(s.p_world, 6.0, 3, fi)
    base = st.asphalt[None] * (0.75 + 0.35 * big + 0.35 * (grain - 0.5))[:, None]
    if st.detail:
        base = base * _asphalt_wear(s, nz, st, ss, dd, fs, fd, fi)[:, None]
    white = np.zeros_like(ss, dtype=np.float32)
    yellow = np.zeros_like(white)
    dl, dp = st.dash
    for d0, kind in st.lane_lines:
        if kind == "dash":
            white = np.maximum(white, box(dd, d0 - 0.075, d0 + 0.075, fd) * pulse(ss, dp, 0, dl, fs))
        elif kind == "solid":
            white = np.maximum(white, box(dd, d0 - 0.08, d0 + 0.08, fd))
        elif kind == "yellow":
            yellow = np.maximum(yellow, box(dd, d0 - 0.08, d0 + 0.08, fd))
        elif kind == "yellow2":
            yellow = np.maximum(yellow, box(dd, d0 - 0.22, d0 - 0.1, fd) + box(dd, d0 + 0.1, d0 + 0.22, fd))
    if st.crosswalk is not None:
        s0, s1, d0, d1 = st.crosswalk
        white = np.maximum(white, box(ss, s0, s1, fs) * box(dd, d0, d1, fd) * pulse(dd, 1.1, 0.0, 0.55, fd))
    wear = 0.75 + 0.25 * nz.fbm(s.p_world, 1.7, 2, fi)
    out = mix(base, st.paint_white, np.clip(white * wear, 0, 1))
    return mix(out, st.paint_yellow, np.clip(yellow * wear, 0, 1))


def _asphalt_wear(s: Surface, nz: Noise, st: StreetLook, ss, dd, fs, fd, fi) -> np.ndarray:
    """Brightness factor ``[N]`` of worn asphalt: rectangular repair patches (fresh, darker
    asphalt or old, paler), an oil-darkened band down each lane's centre, and fine cracks."""
    cell_s, cell_d = 6.0, 2.5
    ci, cj = np.floor(ss / cell_s).astype(np.int64), np.floor(dd / cell_d).astype(np.int64)
    pick, tone, ext = nz.cell(ci, cj, 21), nz.cell(ci, cj, 22), nz.cell(ci, cj, 23)
    ls, ld = ss - ci * cell_s, dd - cj * cell_d
    half = 0.25 + 0.2 * ext  # patch half-extent as a fraction of its cell
    patch = box(ls, cell_s * (0.5 - half), cell_s * (0.5 + half), fs) * box(
        ld, cell_d * (0.5 - half), cell_d * (0.5 + half), fd)
    patch = patch * (pick > 0.7)
    out = 1.0 + patch * np.where(tone > 0.5, -0.25, 0.18)
    # Oil drips between the wheel tracks: a darker band at each lane's centre.
    d_lines = np.sort([d for d, _ in st.lane_lines])
    oil = np.zeros_like(out)
    for c in 0.5 * (d_lines[1:] + d_lines[:-1]):
        oil = np.maximum(oil, box(dd, c - 0.35, c + 0.35, fd))
    out = out * (1.0 - 0.12 * oil * (0.5 + nz.fbm(s.p_world, 0.9, 2, fi)))
    # Cracks: thin lines along the zero set of a noise field, faded once under a pixel.
    ridge = np.abs(nz.fbm(s.p_world * [1.0, 1.0, 0.0] + 41.0, 0.45, 3, fi) - 0.5)
    crack = np.clip(1.0 - ridge / 0.02, 0.0, 1.0) * np.clip(1.0 - fi / 0.08, 0.0, 1.0)
    return (out * (1.0 - 0.45 * crack)).astype(np.float32)


def _curb(s: Surface, nz: Noise, objs: ObjectTable, st: StreetLook) -> np.ndarray:
    fi = s.footprint()
    ss, _ = st.centerline.to_street(s.p_world)
    t, _ = st.centerline.frame(ss)
    joints = 1.0 - 0.45 * pulse(ss, 1.0, 0.0, 0.02, s.footprint(t))
    g = 0.8 + 0.3 * nz.fbm(s.p_world, 3.0, 3, fi)
    return st.curb[None] * (g * joints)[:, None]


def _sidewalk(s: Surface, nz: Noise, objs: ObjectTable, st: StreetLook) -> np.ndarray:
    ss, dd = st.centerline.to_street(s.p_world)
    t, nrm = st.centerline.frame(ss)
    fs, fd, fi = s.footprint(t), s.footprint(nrm), s.footprint()
    ts = st.tile
    inside = pulse(ss, ts, 0.012, ts - 0.012, fs) * pulse(dd, ts, 0.012, ts - 0.012, fd)
    cellv = nz.cell(np.floor(ss / ts).astype(np.int64), np.floor(dd / ts).astype(np.int64), 7)
    amt = 0.18 * np.clip(1.0 - np.maximum(fs, fd) / ts, 0.0, 1.0)
    g = 0.85 + amt * (cellv - 0.5) + 0.25 * (nz.fbm(s.p_world, 4.0, 3, fi) - 0.5)
    if st.detail:  # stains and wet-looking blotches
        g = g * (1.0 - 0.25 * np.clip(3.0 * (nz.fbm(s.p_world + 11.0, 0.6, 3, fi) - 0.62), 0, 1))
    tile = st.sidewalk[None] * g[:, None]
    return mix(st.sidewalk[None] * 0.55, tile, inside)


def _ground(s: Surface, nz: Noise, objs: ObjectTable, st: StreetLook) -> np.ndarray:
    fi = s.footprint()
    a = nz.fbm(s.p_world, 0.25, 2, fi)
    b = nz.fbm(s.p_world, 3.0, 3, fi)
    dirt = _col([0.45, 0.40, 0.32])
    c = mix(st.ground[None], dirt, np.clip(1.6 * (a - 0.35), 0, 1))
    return c * (0.75 + 0.5 * (b - 0.5) + 0.25)[:, None]


def _far_ground(s: Surface, nz: Noise, objs: ObjectTable, st: StreetLook) -> np.ndarray:
    return _ground(s, nz, objs, st) * 0.9


def _facade(s: Surface, nz: Noise, objs: ObjectTable, st: StreetLook) -> np.ndarray:
    o = s.obj
    base_c = objs.color[o]
    trim_c = objs.color2[o]
    prm = objs.params[o]
    ground_h, floor_h, col_w, win_w, win_h, sill, door_u = (prm[:, k] for k in range(7))
    variant = objs.variant[o]
    fu, fv, fi = s.footprint(s.axis_u), s.footprint(s.axis_v), s.footprint()
    u, v = s.u, s.v
    # Wall material: plaster (0), brick (1) or concrete panels (2).
    g = 0.85 + 0.3 * (nz.fbm(s.p, 1.3, 3, fi) - 0.5) + 0.15
    if st.detail:
        # A per-building tint (paint fades differently) and grime: vertical rain streaks and
        # dirt splashed up near the ground.
        tint = np.stack([nz.cell(o, k) for k in (31, 32, 33)], 1)
        base_c = base_c * (0.9 + 0.2 * tint)
        q = np.stack([u * 2.5, v * 0.12, o * 7.13], 1).astype(np.float32)
        streak = np.clip(2.5 * (nz.fbm(q, 1.0, 3, fu * 2.5) - 0.55), 0.0, 1.0)
        g = g * (1.0 - 0.22 * streak - 0.12 * box(v, -1.0, 0.9, fv))
    wall = base_c * g[:, None]
    brick = variant == 1
    if brick.any():
        row = np.floor(v / 0.075)
        uu = u + 0.11 * (row % 2)
        mortar = 1.0 - pulse(uu, 0.225, 0.012, 0.225, fu) * pulse(v, 0.075, 0.01, 0.075, fv)
        bvar = nz.cell(np.floor(uu / 0.225).astype(np.int64), row.astype(np.int64), o)
        fade = np.clip(1.0 - fv / 0.06, 0.0, 1.0)
        bc = base_c * (0.85 + 0.3 * (bvar - 0.5) * fade + 0.15)[:, None]
        bc = mix(bc, _col([0.78, 0.76, 0.72]), mortar * 0.8)
        wall = np.where(brick[:, None], bc, wall)
    panel = variant == 2
    if panel.any():
        seams = 1.0 - np.maximum(pulse(u, 1.5, 0.0, 0.03, fu), pulse(v, 1.2, 0.0, 0.03, fv))
        wall = np.where(panel[:, None], wall * (0.7 + 0.3 * seams)[:, None], wall)
    # Upper-floor windows on a grid fitted to the face width.
    ncol = np.maximum(1.0, np.round(s.su / col_w))
    cw = s.su / ncol
    lo = 0.5 * (cw - win_w * cw)
    hi = cw - lo
    vu = v - ground_h
    top_ok = box(v, ground_h, s.sv - 0.8, fv)
    win = pulse(u, cw, lo, hi, fu) * pulse(vu, floor_h, sill, sill + win_h, fv) * top_ok
    frame = pulse(u, cw, lo - 0.08, hi + 0.08, fu) * pulse(vu, floor_h, sill - 0.08, sill + win_h + 0.06, fv)
    frame = np.clip(frame * top_ok - win, 0.0, 1.0)
    ci = np.floor(u / cw).astype(np.int64)
    ri = np.floor(vu / floor_h).astype(np.int64)
    wv = nz.cell(ci, ri, o, 3)
    glass = _col([0.10, 0.13, 0.17])[None] + (0.25 * wv)[:, None] * _col([0.55, 0.62, 0.7])[None]
    lit = wv > 0.93
    glass[lit] = _col([0.85, 0.78, 0.55])
    # Blinds: the top part of some windows is lighter.
    blind = (wv > 0.6) & (wv <= 0.93)
    within = np.clip((vu - np.floor(vu / floor_h) * floor_h - sill) / np.maximum(win_h, 1e-3), 0, 1)
    glass = np.where((blind & (within > 0.6))[:, None], _col([0.72, 0.70, 0.64])[None], glass)
    # Ground floor: shop windows and one door per face.
    shop = box(v, 0.5, ground_h - 0.7, fv) * pulse(u, 2 * cw, 0.25 * cw, 1.75 * cw, fu)
    door = box(u, door_u * s.su - 0.6, door_u * s.su + 0.6, fu) * box(v, 0.0, 2.3, fv)
    shop = np.clip(shop - door, 0.0, 1.0)
    plinth = box(v, 0.0, 0.45, fv)
    out = mix(wall, trim_c, np.clip(frame + 0.7 * plinth, 0, 1))
    out = mix(out, glass, win)
    out = mix(out, _col([0.16, 0.2, 0.22]) + 0.2 * wv[:, None], shop)
    out = mix(out, trim_c * 0.45, door)
    # A band at each floor line.
    band = box(v, ground_h - 0.25, ground_h, fv)
    return mix(out, trim_c * 0.9, band)


def _roof(s: Surface, nz: Noise, objs: ObjectTable, st: StreetLook) -> np.ndarray:
    g = nz.fbm(s.p, 2.0, 3, s.footprint())
    return _col([0.30, 0.29, 0.28])[None] * (0.7 + 0.6 * g)[:, None]


def _car_body(s: Surface, nz: Noise, objs: ObjectTable, st: StreetLook) -> np.ndarray:
    c = objs.color[s.obj]
    fu, fv = s.footprint(s.axis_u), s.footprint(s.axis_v)
    side = np.abs(s.n[:, 1]) > 0.8
    # Door seams and a sill at fixed fractions of the body length.
    seam = np.maximum(
        box(s.u, 0.36 * s.su - 0.01, 0.36 * s.su + 0.01, fu),
        box(s.u, 0.62 * s.su - 0.01, 0.62 * s.su + 0.01, fu),
    )
    sill = box(s.v, 0.0, 0.12, fv)
    handle = np.maximum(
        box(s.u, 0.30 * s.su - 0.12, 0.30 * s.su, fu), box(s.u, 0.56 * s.su - 0.12, 0.56 * s.su, fu)
    ) * box(s.v, 0.5, 0.55, fv)
    dark = np.where(side, np.clip(seam + sill * 0.8 + handle * 0.5, 0, 1), 0.0)
    g = 0.92 + 0.16 * (nz.fbm(s.p, 3.0, 2, s.footprint()) - 0.5)
    # A sky-like sheen on upward faces.
    sheen = np.clip(s.n[:, 2], 0, 1) * 0.12
    out = c * g[:, None] + sheen[:, None]
    return mix(out, c * 0.25, dark)


def _car_glass(s: Surface, nz: Noise, objs: ObjectTable, st: StreetLook) -> np.ndarray:
    c = objs.color[s.obj]
    prm = objs.params[s.obj]
    x0, x1, z0, h, tf, tb = (prm[:, k] for k in range(6))
    fu, fv = s.footprint(s.axis_u), s.footprint(s.axis_v)
    pw = 0.09
    # Windscreens (front/back faces): pillars at both ends of u.
    glass = box(s.u, pw, s.su - pw, fu) * box(s.v, 0.06, s.sv - 0.05, fv)
    side = np.abs(s.n[:, 1]) > 0.8
    if side.any():
        # Side windows: the sloped A and C pillars follow the cabin outline in local x, z.
        x, z = s.p[:, 0], s.p[:, 2]
        zr = np.clip((z - z0) / np.maximum(h, 1e-3), 0.0, 1.0)
        front, back = x1 - tf * zr, x0 + tb * zr
        mid = 0.5 * (x0 + x1)
        win = box(x, back + pw * 1.4, front - pw * 1.4, fu) * box(z, z0 + 0.06, z0 + h - 0.05, fv)
        win = np.clip(win - box(x, mid - pw, mid + pw, fu), 0.0, 1.0)
        glass = np.where(side, win, glass)
    refl = 0.08 + 0.22 * np.clip(s.v / np.maximum(s.sv, 1e-3), 0, 1)
    gcol = np.stack([refl * 0.9, refl, refl * 1.15], 1)
    return mix(c * 0.95, gcol, glass)


def _lights(s: Surface, objs: ObjectTable, light: np.ndarray, plate: bool) -> np.ndarray:
    c = objs.color[s.obj]
    fu, fv = s.footprint(s.axis_u), s.footprint(s.axis_v)
    w, h = s.su, s.sv
    lamps = (box(s.u, 0.06 * w, 0.26 * w, fu) + box(s.u, 0.74 * w, 0.94 * w, fu)) * box(
        s.v, 0.55 * h, 0.8 * h, fv
    )
    bumper = box(s.v, 0.0, 0.28 * h, fv)
    mid = box(s.u, 0.36 * w, 0.64 * w, fu) * box(s.v, 0.3 * h, 0.5 * h, fv)
    out = mix(c, _col([0.12, 0.12, 0.13]), np.clip(bumper * 0.85, 0, 1))
    out = mix(out, _col([0.92, 0.92, 0.88]) if plate else _col([0.08, 0.08, 0.09]), mid)
    return mix(out, light, np.clip(lamps, 0, 1))


def _car_front(s, nz, objs, st):
    return _lights(s, objs, _col([0.95, 0.93, 0.82]), plate=False)


def _car_rear(s, nz, objs, st):
    return _lights(s, objs, _col([0.75, 0.06, 0.05]), plate=True)


def _wheel(s: Surface, nz: Noise, objs: ObjectTable, st: StreetLook) -> np.ndarray:
    cap = s.su == s.sv  # cap triangles carry (radius, radius) as their extent
    r = np.hypot(s.u, s.v)
    rad = np.maximum(s.su, 1e-3)
    fi = s.footprint()
    ang = np.arctan2(s.v, s.u)
    spokes = pulse(ang * rad, 2 * np.pi * rad / 5, 0, 0.35 * 2 * np.pi * rad / 5, fi)
    rim = box(r, 0.0, 0.62 * rad, fi)
    hub = box(r, 0.0, 0.15 * rad, fi)
    rimc = 0.45 + 0.25 * spokes
    c = np.full(s.u.shape, 0.07, np.float32)
    c = np.where(cap, c * (1 - rim) + rim * np.clip(rimc - hub * 0.3, 0, 1), c)
    c = c * (0.9 + 0.2 * nz.value(s.p * 8.0))
    return np.repeat(c[:, None], 3, 1)


def _pole(s: Surface, nz: Noise, objs: ObjectTable, st: StreetLook) -> np.ndarray:
    c = objs.color[s.obj]
    g = 0.85 + 0.3 * (nz.fbm(s.p * [4.0, 4.0, 0.5], 1.0, 3, s.footprint()) - 0.5)
    band = box(s.p[:, 2], 2.2, 2.5, s.footprint(s.axis_v)) * 0.5
    return mix(c * g[:, None], _col([0.9, 0.9, 0.9]), band)


def _lamp(s: Surface, nz: Noise, objs: ObjectTable, st: StreetLook) -> np.ndarray:
    down = s.n[:, 2] < -0.5
    c = np.where(down[:, None], _col([0.95, 0.93, 0.85])[None], objs.color[s.obj] * 0.8)
    return c


def _sign(s: Surface, nz: Noise, objs: ObjectTable, st: StreetLook) -> np.ndarray:
    c = objs.color[s.obj]
    fu, fv = s.footprint(s.axis_u), s.footprint(s.axis_v)
    inner = box(s.u, 0.06, s.su - 0.06, fu) * box(s.v, 0.06, s.sv - 0.06, fv)
    glyph = box(s.u, 0.3 * s.su, 0.7 * s.su, fu) * box(s.v, 0.4 * s.sv, 0.6 * s.sv, fv)
    back = np.abs(s.n[:, 0]) < 0.5  # thin edges
    out = mix(_col([0.92, 0.92, 0.92]), c, inner)
    out = mix(out, _col([0.95, 0.95, 0.95]), glyph)
    return np.where(back[:, None], _col([0.5, 0.5, 0.52])[None], out)


def _trunk(s: Surface, nz: Noise, objs: ObjectTable, st: StreetLook) -> np.ndarray:
    g = nz.fbm(s.p * [1.0, 1.0, 0.25], 9.0, 3, s.footprint())
    return _col([0.33, 0.24, 0.17])[None] * (0.6 + 0.8 * g)[:, None]


def _foliage(s: Surface, nz: Noise, objs: ObjectTable, st: StreetLook) -> np.ndarray:
    c = objs.color[s.obj]
    c2 = objs.color2[s.obj]
    fi = s.footprint()
    a = nz.fbm(s.p, 1.2, 2, fi)
    b = nz.fbm(s.p, 6.0, 3, fi)
    col = mix(c, c2, np.clip(1.8 * (a - 0.3), 0, 1))
    return col * (0.55 + 0.9 * (b - 0.5) + 0.45)[:, None]


def _clothes(s: Surface, nz: Noise, objs: ObjectTable, st: StreetLook) -> np.ndarray:
    """Shirt (``color``) above the hips, trousers (``color2``) below, shoes at the bottom."""
    top, bottom = objs.color[s.obj], objs.color2[s.obj]
    fz = s.footprint(s.axis_v)
    z = s.p[:, 2]
    hip = objs.params[s.obj, 0]
    c = mix(bottom, top, box(z, hip, 10.0, fz))
    c = mix(c, _col([0.1, 0.09, 0.08]), box(z, -1.0, 0.08, fz))
    return c * (0.85 + 0.3 * nz.fbm(s.p, 8.0, 2, s.footprint()))[:, None]


def _skin(s: Surface, nz: Noise, objs: ObjectTable, st: StreetLook) -> np.ndarray:
    """Face and hands; hair (``params[1]`` tone) on the top and back of the head."""
    skin = objs.params[s.obj, 2:5]
    hair = _col([0.12, 0.09, 0.06]) * objs.params[s.obj, 1:2] * 3.0
    n = s.n
    is_hair = (n[:, 2] > 0.35) | (n[:, 0] < -0.3)
    return np.where(is_hair[:, None] & (s.p[:, 2] > 1.45)[:, None], hair, skin)


def _balcony(s: Surface, nz: Noise, objs: ObjectTable, st: StreetLook) -> np.ndarray:
    """Slabs in the building's trim colour."""
    g = 0.85 + 0.3 * (nz.fbm(s.p, 2.0, 2, s.footprint()) - 0.5)
    return objs.color2[s.obj] * g[:, None]


def _railing(s: Surface, nz: Noise, objs: ObjectTable, st: StreetLook) -> np.ndarray:
    """Vertical bars (dark metal) in front of a lighter backing panel, a rail on top."""
    fu, fv = s.footprint(s.axis_u), s.footprint(s.axis_v)
    bars = pulse(s.u, 0.12, 0.0, 0.03, fu)
    rail = box(s.v, s.sv - 0.06, s.sv + 1.0, fv) + box(s.v, -1.0, 0.05, fv)
    metal = np.clip(bars + rail, 0.0, 1.0)
    panel = objs.color2[s.obj] * 0.75 + 0.1
    return mix(panel, _col([0.12, 0.12, 0.13]), metal)


_SHADERS = {
    ROAD: _road,
    CURB: _curb,
    SIDEWALK: _sidewalk,
    GROUND: _ground,
    FAR_GROUND: _far_ground,
    FACADE: _facade,
    ROOF: _roof,
    CAR_BODY: _car_body,
    CAR_GLASS: _car_glass,
    CAR_FRONT: _car_front,
    CAR_REAR: _car_rear,
    WHEEL: _wheel,
    POLE: _pole,
    LAMP: _lamp,
    SIGN: _sign,
    TRUNK: _trunk,
    FOLIAGE: _foliage,
    CLOTHES: _clothes,
    SKIN: _skin,
    BALCONY: _balcony,
    RAILING: _railing,
}
