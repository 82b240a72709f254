"""A random street: lanes, kerbs, sidewalks, buildings, parked and moving cars, pedestrians,
street lights, trees, signs, sun and sky.

Everything is drawn from one ``numpy.random.Generator``, so a seed fixes the scene. The scene
frame is z-up with the street's centre line starting at the origin along +x (see
:mod:`splatnet.clip.synth.street`); traffic keeps right and the ego drives towards +s. Lateral
offsets ``d`` are positive to the left; ``side`` is -1 for the right-hand side, +1 for the left.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from splatnet.clip.synth import materials as M
from splatnet.clip.synth import props
from splatnet.clip.synth.meshes import Mesh, quads
from splatnet.clip.synth.props import uniform as _u
from splatnet.clip.synth.street import Centerline

SIDES = (-1.0, 1.0)  # right, left


@dataclass
class SceneObject:
    """A mesh in its own local frame, its shading parameters and its motion."""

    kind: str
    mesh: Mesh
    color: np.ndarray
    color2: np.ndarray = field(default_factory=lambda: np.zeros(3))
    params: np.ndarray = field(default_factory=lambda: np.zeros(8))
    variant: int = 0
    pose: np.ndarray | None = None  # static 4×4 local-to-scene pose
    motion: tuple | None = None  # moving object: (d, s0, speed along s, yaw offset)
    size: tuple = ()  # bounding box (length, width, height) of cars and pedestrians
    z: float = 0.0  # height of a moving object's ground (sidewalk level for pedestrians)

    @property
    def dynamic(self) -> bool:
        return self.motion is not None


@dataclass
class Layout:
    centerline: Centerline
    look: M.StreetLook
    objects: list[SceneObject]
    ego_d: float
    ego_s0: float
    ego_speed: float
    sun_dir: np.ndarray  # unit vector towards the sun, scene frame
    sun_color: np.ndarray
    ambient: np.ndarray
    sky_zenith: np.ndarray
    sky_horizon: np.ndarray
    cloud_cover: float
    info: dict
    haze_distance: float = 1e9  # metres over which distant surfaces fade towards the horizon

    def object_pose(self, i: int, t: float) -> np.ndarray:
        o = self.objects[i]
        if o.motion is None:
            return o.pose
        d, s0, v, yaw = o.motion
        return self.centerline.pose(s0 + v * t, d, yaw, o.z)

    def object_velocity(self, i: int, t: float) -> np.ndarray:
        o = self.objects[i]
        if o.motion is None:
            return np.zeros(3)
        d, s0, v, _ = o.motion
        tan, _ = self.centerline.frame(s0 + v * t)
        # A point at lateral offset d moves at v·(1 - κd) along an arc of the centre line.
        return tan * v * (1.0 - self.centerline.kappa * d)

    def ego_pose(self, t: float) -> np.ndarray:
        return self.centerline.pose(self.ego_s0 + self.ego_speed * t, self.ego_d)


@dataclass
class _Plan:
    """The street's cross-section and extent."""

    cl: Centerline
    lane_w: float
    lanes: tuple[int, int]  # (forward = right of the centre line, oncoming = left)
    park_w: float
    park: tuple[bool, bool]  # parking strip on the (right, left)
    curb_h: float
    curb_w: float
    walk: tuple[float, float]  # sidewalk widths (right, left)
    near: tuple[float, float]  # s range that gets buildings, furniture and traffic
    extent: tuple[float, float]  # s range of the street surfaces

    @staticmethod
    def k(side: float) -> int:
        return 0 if side < 0 else 1

    def edge(self, side: float) -> float:
        """|d| of the road edge (kerb face) on ``side``."""
        k = self.k(side)
        return self.lanes[k] * self.lane_w + (self.park_w if self.park[k] else 0.0)

    def kerb(self, side: float) -> float:
        """|d| where the sidewalk starts."""
        return self.edge(side) + self.curb_w

    def line(self, side: float) -> float:
        """|d| of the building line (the sidewalk's far edge)."""
        return self.kerb(side) + self.walk[self.k(side)]


def _plan(rng: np.random.Generator, travel: float) -> _Plan:
    kappa = 0.0 if rng.random() < 0.3 else float(rng.choice([-1, 1]) / rng.uniform(250.0, 900.0))
    lane_w = _u(rng, 3.0, 3.7)
    lanes = (int(rng.choice([1, 2], p=[0.55, 0.45])), int(rng.choice([1, 2], p=[0.6, 0.4])))
    park_w = _u(rng, 2.1, 2.5)
    park = (bool(rng.random() < 0.75), bool(rng.random() < 0.75))
    curb_h, curb_w = _u(rng, 0.1, 0.18), _u(rng, 0.2, 0.35)
    walk = (_u(rng, 2.0, 4.5), _u(rng, 2.0, 4.5))
    return _Plan(Centerline(kappa), lane_w, lanes, park_w, park, curb_h, curb_w, walk,
                 (-70.0, travel + 130.0), (-250.0, 400.0 + travel))


def _look(rng: np.random.Generator, p: _Plan, travel: float) -> M.StreetLook:
    """Markings (centre line, lane separators, edge lines, maybe a crosswalk) and colours."""
    fwd, back = p.lanes
    lines: list = [(0.0, str(rng.choice(["yellow2", "yellow", "dash"])))]
    lines += [(-k * p.lane_w, "dash") for k in range(1, fwd)]
    lines += [(k * p.lane_w, "dash") for k in range(1, back)]
    lines += [(-fwd * p.lane_w + 0.2, "solid"), (back * p.lane_w - 0.2, "solid")]
    crosswalk = None
    if rng.random() < 0.5:
        c0 = _u(rng, 20.0, 60.0) + travel
        crosswalk = (c0, c0 + 4.0, -fwd * p.lane_w + 0.3, back * p.lane_w - 0.3)
    asphalt = np.array([0.33, 0.33, 0.34]) * _u(rng, 0.8, 1.2) + rng.normal(0, 0.01, 3)
    f32 = np.float32
    return M.StreetLook(
        centerline=p.cl, lane_lines=lines, crosswalk=crosswalk, asphalt=asphalt.astype(f32),
        paint_white=np.array([0.88, 0.88, 0.86], f32), paint_yellow=np.array([0.85, 0.68, 0.15], f32),
        curb=(np.array([0.66, 0.65, 0.62]) * _u(rng, 0.9, 1.1)).astype(f32),
        sidewalk=(np.array([0.62, 0.60, 0.57]) * _u(rng, 0.85, 1.15)).astype(f32),
        ground=(np.array([0.30, 0.42, 0.20]) * _u(rng, 0.8, 1.2)).astype(f32),
        tile=_u(rng, 0.3, 0.6), dash=(_u(rng, 2.5, 3.5), _u(rng, 9.0, 12.0)),
    )


def _strip(cl: Centerline, s0: float, s1: float, ds: float, a, b, material) -> Mesh:
    """Surface swept along the street between cross-section points ``a = (d, z)`` and ``b``."""
    s = np.linspace(s0, s1, max(1, int(np.ceil((s1 - s0) / ds))) + 1)

    def pts(dz):
        q = cl.point(s, dz[0])
        q[:, 2] = dz[1]
        return q

    pa, pb = pts(a), pts(b)
    return quads(np.stack([pa[:-1], pa[1:], pb[1:], pb[:-1]], 1), material)


def _street_surfaces(p: _Plan) -> SceneObject:
    """Road, kerbs, sidewalks, the ground behind them and a far ground plane, in scene
    coordinates (one static object)."""
    s0, s1 = p.extent
    h = p.curb_h
    parts = [_strip(p.cl, s0, s1, 2.0, (-p.edge(-1), 0.0), (p.edge(1), 0.0), M.ROAD)]
    for side in SIDES:
        e, k, ln = side * p.edge(side), side * p.kerb(side), side * p.line(side)
        parts.append(_strip(p.cl, s0, s1, 2.0, (e, 0.0), (e, h), M.CURB))
        parts.append(_strip(p.cl, s0, s1, 2.0, (e, h), (k, h), M.CURB))
        parts.append(_strip(p.cl, s0, s1, 2.0, (k, h), (ln, h), M.SIDEWALK))
        parts.append(_strip(p.cl, s0, s1, 4.0, (ln, h), (ln + side * 80.0, h), M.GROUND))
    far = 3000.0
    mid = p.cl.point(0.5 * (s0 + s1))
    corners = np.array([[mid + [-far, -far, -0.05], mid + [far, -far, -0.05],
                         mid + [far, far, -0.05], mid + [-far, far, -0.05]]])
    parts.append(quads(corners, M.FAR_GROUND))
    return SceneObject("street", Mesh.concat(parts), np.zeros(3), pose=np.eye(4))


def _buildings(rng: np.random.Generator, p: _Plan) -> list[SceneObject]:
    """A street front of blocks (with alleys and setbacks) on each side and a taller back row
    seen through the gaps."""
    out = []
    style_h = _u(rng, 8.0, 30.0)

    def add(sc, d, width, depth, height, street_face=0.0):
        mesh, prm, base, trim, variant = props.building(rng, width, depth, height, street_face)
        # Local frame: x along the street, y towards +d, origin at the base centre.
        out.append(SceneObject("building", mesh, base, trim, prm, variant,
                               p.cl.pose(sc, d, 0.0, p.curb_h), size=(width, depth, height)))

    lo, hi = p.near
    for side in SIDES:
        line = p.line(side)
        s = lo - _u(rng, 0.0, 10.0)
        while s < hi:
            width = _u(rng, 8.0, 26.0)
            if rng.random() < 0.15:
                s += _u(rng, 3.0, 10.0)  # an alley
            depth = _u(rng, 10.0, 18.0)
            height = float(np.clip(rng.normal(style_h, 0.35 * style_h), 5.0, 45.0))
            setback = _u(rng, 0.0, 1.5) if rng.random() < 0.4 else 0.0
            add(s + width / 2, side * (line + setback + depth / 2), width, depth, height, -side)
            s += width
        s = lo - _u(rng, 0.0, 20.0)
        while s < hi + 40.0:
            width, depth = _u(rng, 15.0, 40.0), _u(rng, 15.0, 25.0)
            height = float(np.clip(rng.normal(1.4 * style_h, 0.4 * style_h), 8.0, 60.0))
            back = line + 20.0 + _u(rng, 0.0, 12.0)
            add(s + width / 2, side * (back + depth / 2), width, depth, height)
            s += width + (_u(rng, 5.0, 30.0) if rng.random() < 0.3 else 0.0)
    return out


#: Distances from the kerb line of sidewalk furniture (street lights, signs) and trees.
_LIGHT_D, _SIGN_D, _TREE_D_MAX = 0.45, 0.35, 1.3


def _furniture(rng: np.random.Generator, p: _Plan) -> tuple[list[SceneObject], dict]:
    """Street lights, trees, signs and bushes; also returns, per side, the band of the
    sidewalk (|d| range) left free for pedestrians."""
    out: list[SceneObject] = []
    free_band = {}
    lo, hi = p.near
    for side in SIDES:
        w, kerb = p.walk[p.k(side)], p.kerb(side)
        used: list[tuple[float, float]] = []  # s intervals taken at the kerb

        def free(a, b, used=used):
            return all(b < u0 or a > u1 for u0, u1 in used)

        s = lo + _u(rng, 0, 20)
        spacing = _u(rng, 18.0, 32.0)
        pole_col = np.array([0.45, 0.47, 0.5]) * _u(rng, 0.7, 1.3)
        while s < hi:
            # The arm points along local -y: towards the road after a half turn on the right.
            pose = p.cl.pose(s, side * (kerb + _LIGHT_D), np.pi if side < 0 else 0.0, p.curb_h)
            out.append(SceneObject("streetlight", props.streetlight(rng), pole_col, pose=pose))
            used.append((s - 1.0, s + 1.0))
            s += spacing
        band_lo = _SIGN_D + 0.35 + 0.35  # clear of sign plates (0.7 m wide) and light poles
        if rng.random() < 0.75 and w >= 2.5:
            tree_d = min(_TREE_D_MAX, w / 2)
            band_lo = tree_d + 0.2 + 0.35  # clear of trunks
            s = lo + _u(rng, 0, 10)
            gap = _u(rng, 7.0, 14.0)
            leaf = np.array([0.22, 0.38, 0.14]) * _u(rng, 0.8, 1.2)
            while s < hi:
                if free(s - 1.5, s + 1.5):
                    mesh, c1, c2 = props.tree(rng, leaf)
                    pose = p.cl.pose(s, side * (kerb + tree_d), _u(rng, 0, 6.28), p.curb_h)
                    out.append(SceneObject("tree", mesh, c1, c2, pose=pose))
                    used.append((s - 1.5, s + 1.5))
                s += gap
        for _ in range(int(rng.integers(0, 3))):
            s = _u(rng, lo, hi)
            if not free(s - 0.6, s + 0.6):
                continue
            mesh, color = props.sign(rng)
            # The plate faces oncoming traffic on its side (local +x towards -s on the right).
            pose = p.cl.pose(s, side * (kerb + _SIGN_D), np.pi if side < 0 else 0.0, p.curb_h)
            out.append(SceneObject("sign", mesh, color, pose=pose))
            used.append((s - 0.6, s + 0.6))
        band_hi = w - 0.35  # clear of the facades
        n_bush = int(rng.integers(0, 5))
        if n_bush:
            band_hi -= 2 * props.BUSH_HALF_DEPTH
        for _ in range(n_bush):
            mesh, color = props.bush(rng)
            d = side * (kerb + w - props.BUSH_HALF_DEPTH)
            pose = p.cl.pose(_u(rng, lo, hi), d, 0.0, p.curb_h)
            out.append(SceneObject("bush", mesh, color, color * 1.4, pose=pose))
        free_band[side] = (band_lo, band_hi)
    return out, free_band


def _parked_cars(rng: np.random.Generator, p: _Plan) -> list[SceneObject]:
    """Cars in the parking strips, nose in the direction of traffic, with random gaps."""
    out = []
    lo, hi = p.near
    for side in SIDES:
        if not p.park[p.k(side)]:
            continue
        d = side * (p.lanes[p.k(side)] * p.lane_w + p.park_w / 2)
        s = lo + _u(rng, 0, 6)
        while s < hi:
            mesh, size, prm, color = props.car(rng)
            if rng.random() < 0.8:
                yaw = (0.0 if side < 0 else np.pi) + rng.normal(0, 0.02)
                pose = p.cl.pose(s + size[0] / 2, d + rng.normal(0, 0.08), yaw)
                out.append(SceneObject("parked_car", mesh, color, params=prm, pose=pose, size=size))
            s += size[0] + _u(rng, 0.8, 3.0) + (_u(rng, 5, 15) if rng.random() < 0.2 else 0.0)
    return out


def _pedestrians(rng: np.random.Generator, p: _Plan, free_band: dict) -> list[SceneObject]:
    """People walking along the sidewalks inside the band the furniture leaves free."""
    out = []
    lo, hi = p.near
    for side in SIDES:
        n = int(rng.integers(0, 7))
        band_lo, band_hi = free_band[side]
        if band_hi < band_lo:
            continue  # too narrow here
        for _ in range(n):
            mesh, size, prm, top, bottom = props.pedestrian(rng)
            d = side * (p.kerb(side) + _u(rng, band_lo, band_hi))
            speed = _u(rng, 0.8, 1.7) * (1.0 if rng.random() < 0.5 else -1.0)
            motion = (d, _u(rng, lo + 20, hi - 40), speed, 0.0 if speed > 0 else np.pi)
            out.append(SceneObject("pedestrian", mesh, top, bottom, params=prm, motion=motion,
                                   size=size, z=p.curb_h))
    return out


def _traffic(rng: np.random.Generator, p: _Plan, ego_d: float, ego_speed: float,
             duration: float) -> list[SceneObject]:
    """Moving cars: one speed per lane so cars in a lane never collide; the ego lane gets at
    most a lead car far enough ahead that the gap stays positive for the whole clip."""
    out = []
    lo, hi_near = p.near
    fwd, back = p.lanes
    lanes = [(-(k + 0.5) * p.lane_w, 1.0) for k in range(fwd)]
    lanes += [((k + 0.5) * p.lane_w, -1.0) for k in range(back)]
    for d, direction in lanes:
        speed = ego_speed * _u(rng, 0.75, 1.2) if direction > 0 else _u(rng, 6.0, 14.0)
        if abs(d - ego_d) < 1e-6:
            speed = ego_speed * _u(rng, 0.95, 1.15)
            if rng.random() < 0.3:
                continue
            s = 12.0 + max(0.0, (ego_speed - speed) * duration) + _u(rng, 0.0, 20.0)
            hi = s + 1.0  # one lead car
        else:
            # Oncoming cars travel towards -s: start them further out so they pass the ego.
            shift = speed * duration if direction < 0 else 0.0
            s = lo + 20.0 + _u(rng, 0, 15) + shift * 0.5
            hi = hi_near - 30.0 + shift
        while s < hi:
            mesh, size, prm, color = props.car(rng)
            motion = (d, s + size[0] / 2, direction * speed, 0.0 if direction > 0 else np.pi)
            out.append(SceneObject("moving_car", mesh, color, params=prm, motion=motion, size=size))
            s += size[0] + _u(rng, 8.0, 40.0)
    return out


def _sky(rng: np.random.Generator) -> dict:
    """Sun direction and colours of sun, ambient light, sky and haze: clear or overcast."""
    az = _u(rng, 0.0, 2 * np.pi)
    el = np.radians(_u(rng, 15.0, 60.0))
    sun_dir = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    if rng.random() < 0.2:
        return dict(sun_dir=sun_dir, overcast=True, sun_color=np.array([0.35, 0.35, 0.35]),
                    ambient=np.array([0.75, 0.76, 0.8]), sky_zenith=np.array([0.6, 0.63, 0.68]),
                    sky_horizon=np.array([0.82, 0.83, 0.85]), cloud_cover=_u(rng, 0.6, 0.9),
                    haze_distance=_u(rng, 250.0, 600.0))
    return dict(sun_dir=sun_dir, overcast=False,
                sun_color=np.array([0.72, 0.68, 0.6]) * _u(rng, 0.9, 1.1),
                ambient=np.array([0.42, 0.45, 0.52]) * _u(rng, 0.9, 1.1),
                sky_zenith=np.array([0.25, 0.45, 0.8]) * _u(rng, 0.85, 1.1),
                sky_horizon=np.array([0.72, 0.8, 0.9]) * _u(rng, 0.9, 1.05),
                cloud_cover=_u(rng, 0.0, 0.5), haze_distance=_u(rng, 500.0, 1500.0))


def _varied_sky(rng: np.random.Generator) -> dict:
    """A wider sky than :func:`_sky`: sun 3-75° high (warmer and weaker near the horizon),
    clear, hazy or overcast weather with varied gradients, cloud cover and haze."""
    az = _u(rng, 0.0, 2 * np.pi)
    el_deg = _u(rng, 3.0, 75.0)
    el = np.radians(el_deg)
    sun_dir = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    weather = str(rng.choice(["clear", "hazy", "overcast"], p=[0.55, 0.25, 0.2]))
    # Always the same draws, whatever the weather, so the stream stays aligned.
    k_sun, k_amb, hue, k_zen, k_hor, cover, k_haze, grey = rng.random(8)
    # Sunlight crosses more air near the horizon: redder and weaker (Rayleigh scattering).
    high = float(np.clip((el_deg - 3.0) / 25.0, 0.0, 1.0))
    warm = np.array([1.0, 0.8 + 0.2 * high, 0.58 + 0.42 * high])
    sun = np.array([0.74, 0.7, 0.64]) * warm * (0.85 + 0.3 * k_sun) * (0.65 + 0.35 * high)
    ambient = np.array([0.42, 0.45, 0.52]) * (0.85 + 0.3 * k_amb)
    sunset = np.array([0.95, 0.78, 0.6])
    if weather == "clear":
        zenith = ((1 - hue) * np.array([0.16, 0.34, 0.78]) + hue * np.array([0.45, 0.6, 0.86]))
        horizon = np.array([0.74, 0.82, 0.92]) * (0.9 + 0.15 * k_hor)
        horizon = horizon + (sunset - horizon) * 0.6 * (1.0 - high)
        return dict(sun_dir=sun_dir, weather=weather, sun_color=sun, ambient=ambient,
                    sky_zenith=zenith * (0.85 + 0.25 * k_zen), sky_horizon=np.clip(horizon, 0, 1),
                    cloud_cover=0.55 * cover, haze_distance=500.0 + 1000.0 * k_haze)
    if weather == "hazy":
        horizon = np.array([0.84, 0.84, 0.82]) * (0.92 + 0.1 * k_hor)
        horizon = horizon + (sunset - horizon) * 0.4 * (1.0 - high)
        return dict(sun_dir=sun_dir, weather=weather, sun_color=sun * 0.7,
                    ambient=np.array([0.5, 0.52, 0.55]) * (0.9 + 0.2 * k_amb),
                    sky_zenith=np.array([0.52, 0.62, 0.78]) * (0.9 + 0.15 * k_zen),
                    sky_horizon=np.clip(horizon, 0, 1), cloud_cover=0.35 * cover,
                    haze_distance=150.0 + 250.0 * k_haze)
    g = 0.5 + 0.4 * grey  # overcast: from dark rain clouds to a bright white sky
    return dict(sun_dir=sun_dir, weather=weather, sun_color=np.full(3, 0.25 + 0.15 * k_sun),
                ambient=np.array([0.8, 0.81, 0.85]) * (0.7 + 0.4 * grey),
                sky_zenith=g * np.array([0.93, 0.96, 1.0]),
                sky_horizon=np.clip((g + 0.12) * np.array([0.97, 0.98, 1.0]), 0, 1),
                cloud_cover=0.6 + 0.35 * cover, haze_distance=200.0 + 400.0 * k_haze)


def generate_layout(
    rng: np.random.Generator,
    duration: float,
    *,
    ego_speed: float | None = None,
    sky_rng: np.random.Generator | None = None,
    texture_variety: bool = False,
) -> Layout:
    """Draw a street for a clip of ``duration`` seconds.

    ``ego_speed`` (m/s) replaces the drawn 8-12 m/s; ``sky_rng`` draws a :func:`_varied_sky`
    instead of the default sky; ``texture_variety`` turns on the materials' extra detail. None of
    them changes the other draws from ``rng``.
    """
    drawn_speed = _u(rng, 8.0, 12.0)
    ego_speed = drawn_speed if ego_speed is None else float(ego_speed)
    p = _plan(rng, ego_speed * duration)
    ego_lane = int(rng.integers(p.lanes[0]))
    ego_d = -(ego_lane + 0.5) * p.lane_w
    look = _look(rng, p, ego_speed * duration)
    objects = [_street_surfaces(p), *_buildings(rng, p)]
    furniture, free_band = _furniture(rng, p)
    objects += furniture
    objects += _parked_cars(rng, p)
    objects += _pedestrians(rng, p, free_band)
    objects += _traffic(rng, p, ego_d, ego_speed, duration)
    sky = _sky(rng)
    info = {
        "curvature": p.cl.kappa, "lane_width": p.lane_w, "lanes_forward": p.lanes[0],
        "lanes_oncoming": p.lanes[1], "parking": list(p.park), "curb_height": p.curb_h,
        "sidewalk_width": list(p.walk), "ego_lane": ego_lane, "overcast": sky.pop("overcast"),
    }
    if sky_rng is not None:
        sky = _varied_sky(sky_rng)
        info["weather"] = sky.pop("weather")
        info["overcast"] = info["weather"] == "overcast"
    look.detail = bool(texture_variety)
    return Layout(p.cl, look, objects, ego_d, 0.0, ego_speed, info=info, **sky)
