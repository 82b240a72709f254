"""A random street: lanes, curbs, sidewalks, buildings, parked and moving cars, poles, trees.

Everything is drawn from one ``numpy.random.Generator``, so a seed fixes the scene. The scene
frame is z-up with the street's centre line starting at the origin along +x (see
:mod:`splatnet.clip.synth.street`); the ego drives in a right-hand lane towards +s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from splatnet.clip.synth import materials as M
from splatnet.clip.synth.meshes import Mesh, axis_y, box, cylinder, ellipsoid, quads
from splatnet.clip.synth.street import Centerline

_CAR_COLORS = np.array(
    [
        [0.92, 0.92, 0.90],
        [0.08, 0.08, 0.09],
        [0.62, 0.63, 0.65],
        [0.40, 0.41, 0.43],
        [0.62, 0.08, 0.07],
        [0.10, 0.20, 0.50],
        [0.13, 0.30, 0.18],
        [0.80, 0.65, 0.20],
        [0.85, 0.40, 0.10],
        [0.35, 0.55, 0.75],
        [0.55, 0.45, 0.35],
        [0.30, 0.10, 0.30],
    ]
)
_FACADE_COLORS = np.array(
    [
        [0.82, 0.78, 0.70],
        [0.70, 0.45, 0.35],
        [0.60, 0.58, 0.55],
        [0.85, 0.82, 0.74],
        [0.55, 0.35, 0.28],
        [0.72, 0.70, 0.62],
        [0.45, 0.50, 0.55],
        [0.88, 0.75, 0.55],
        [0.65, 0.55, 0.45],
        [0.78, 0.62, 0.50],
        [0.50, 0.52, 0.48],
        [0.90, 0.88, 0.84],
    ]
)
_SIGN_COLORS = np.array([[0.75, 0.08, 0.08], [0.08, 0.25, 0.65], [0.10, 0.45, 0.20], [0.90, 0.75, 0.10]])


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
        s = s0 + v * t
        tan, _ = self.centerline.frame(s)
        # A point at lateral offset d moves at v·(1 - κd) along an arc of the centre line.
        return tan * v * (1.0 - self.centerline.kappa * d)

    def ego_pose(self, t: float) -> np.ndarray:
        return self.centerline.pose(self.ego_s0 + self.ego_speed * t, self.ego_d)


def _u(rng, lo, hi) -> float:
    return float(rng.uniform(lo, hi))


def strip(cl: Centerline, s0: float, s1: float, ds: float, a, b, material) -> Mesh:
    """Surface swept along the street between lateral profile points ``a=(d, z)`` and ``b``."""
    n = max(1, int(np.ceil((s1 - s0) / ds)))
    s = np.linspace(s0, s1, n + 1)

    def pts(dz):
        p = cl.point(s, dz[0])
        p[:, 2] = dz[1]
        return p

    pa, pb = pts(a), pts(b)
    corners = np.stack([pa[:-1], pa[1:], pb[1:], pb[:-1]], 1)
    return quads(corners, material)


def car_mesh(rng: np.random.Generator) -> tuple[Mesh, tuple, np.ndarray]:
    """A car in its local frame (x forward, y left, z up, origin on the ground at its centre)."""
    kind = rng.choice(["sedan", "hatch", "suv", "van"], p=[0.4, 0.25, 0.25, 0.1])
    if kind == "sedan":
        L, W, z0, z1, cl, ch, cx = _u(rng, 4.3, 4.9), _u(rng, 1.75, 1.85), 0.28, 0.95, 0.5, 0.5, -0.08
    elif kind == "hatch":
        L, W, z0, z1, cl, ch, cx = _u(rng, 3.7, 4.2), _u(rng, 1.68, 1.8), 0.28, 0.95, 0.58, 0.52, -0.1
    elif kind == "suv":
        L, W, z0, z1, cl, ch, cx = _u(rng, 4.5, 4.9), _u(rng, 1.85, 1.95), 0.35, 1.1, 0.62, 0.58, -0.08
    else:
        L, W, z0, z1, cl, ch, cx = _u(rng, 4.8, 5.3), _u(rng, 1.9, 2.0), 0.35, 1.2, 0.74, 0.85, -0.1
    body_mats = [M.CAR_FRONT, M.CAR_REAR, M.CAR_BODY, M.CAR_BODY, M.CAR_BODY, M.CAR_BODY]
    body = box((L, W, z1 - z0), (0.0, 0.0, z0), body_mats)
    cab_mats = [M.CAR_GLASS, M.CAR_GLASS, M.CAR_GLASS, M.CAR_GLASS, M.CAR_BODY, M.CAR_BODY]
    # Sloped windscreens: the cabin's roof is shorter than its base.
    tf = ch * (_u(rng, 0.9, 1.4) if kind != "van" else 0.35)
    tb = ch * (_u(rng, 0.3, 0.8) if kind in ("sedan", "suv") else 0.15)
    cabin = box((cl * L, W - 0.14, ch), (cx * L, 0.0, z1), cab_mats, bottom=False, taper=(tf, tb))
    r = _u(rng, 0.3, 0.35)
    parts = [body, cabin]
    for x in (L / 2 - 0.8, -(L / 2 - 0.85)):
        for side in (1.0, -1.0):
            w = cylinder(r, -0.11, 0.11, 12, M.WHEEL)
            parts.append(axis_y(w, (x, side * (W / 2 - 0.1), r)))
    # The glass shader needs the cabin's outline: x range, base height, height and tapers.
    x0 = cx * L - cl * L / 2
    params = np.array([x0, x0 + cl * L, z1, ch, tf, tb, 0.0, 0.0])
    return Mesh.concat(parts), (L, W, z1 + ch), params


_CLOTH_COLORS = np.array([
    [0.15, 0.15, 0.18], [0.85, 0.85, 0.82], [0.20, 0.28, 0.50], [0.55, 0.12, 0.12],
    [0.25, 0.40, 0.25], [0.70, 0.60, 0.40], [0.45, 0.45, 0.48], [0.90, 0.70, 0.20],
])
_SKIN_TONES = np.array([[0.85, 0.68, 0.55], [0.72, 0.53, 0.40], [0.50, 0.35, 0.25],
                        [0.35, 0.24, 0.17]])


def pedestrian_mesh(rng: np.random.Generator) -> tuple[Mesh, tuple, np.ndarray]:
    """A standing figure (legs, torso, arms, head) facing local +x, feet at z = 0."""
    h = _u(rng, 1.55, 1.9)
    k = h / 1.75
    hip, shoulder = 0.9 * k, 1.45 * k
    legs = [box((0.16, 0.14, hip), (rng.normal(0, 0.06), y * 0.1, 0.0), M.CLOTHES)
            for y in (-1.0, 1.0)]
    torso = box((0.24, 0.42 * k, shoulder - hip), (0.0, 0.0, hip), M.CLOTHES)
    arms = [box((0.12, 0.1, 0.62 * k), (rng.normal(0, 0.05), y * 0.27 * k, shoulder - 0.62 * k),
                M.CLOTHES) for y in (-1.0, 1.0)]
    head = ellipsoid((0.1 * k, 0.085 * k, 0.12 * k), (0.0, 0.0, shoulder + 0.16 * k), 5, 8, M.SKIN)
    skin = _SKIN_TONES[rng.integers(len(_SKIN_TONES))]
    params = np.array([hip, _u(rng, 0.3, 1.0), *skin, 0.0, 0.0, 0.0])
    return Mesh.concat([*legs, torso, *arms, head]), (0.3, 0.6 * k, shoulder + 0.28 * k), params


def generate_layout(rng: np.random.Generator, duration: float) -> Layout:
    """Draw a street for a clip of ``duration`` seconds."""
    kappa = 0.0 if rng.random() < 0.3 else float(rng.choice([-1, 1]) / rng.uniform(250.0, 900.0))
    cl = Centerline(kappa)
    lw = _u(rng, 3.0, 3.7)
    lanes_fwd = int(rng.choice([1, 2], p=[0.55, 0.45]))
    lanes_back = int(rng.choice([1, 2], p=[0.6, 0.4]))
    pw = _u(rng, 2.1, 2.5)
    park = [rng.random() < 0.75, rng.random() < 0.75]  # right, left
    e_right = lanes_fwd * lw + (pw if park[0] else 0.0)
    e_left = lanes_back * lw + (pw if park[1] else 0.0)
    curb_h, curb_w = _u(rng, 0.1, 0.18), _u(rng, 0.2, 0.35)
    walk = [_u(rng, 2.0, 4.5), _u(rng, 2.0, 4.5)]
    ego_lane = int(rng.integers(lanes_fwd))
    ego_d = -(ego_lane + 0.5) * lw
    ego_speed = _u(rng, 8.0, 12.0)
    travel = ego_speed * duration
    s_lo, s_hi = -250.0, 400.0 + travel
    near_lo, near_hi = -70.0, travel + 130.0

    # Markings: lane separators, centre line, edge lines, maybe a crosswalk ahead.
    lines: list = []
    centre = str(rng.choice(["yellow2", "yellow", "dash"]))
    lines.append((0.0, centre))
    lines += [(-k * lw, "dash") for k in range(1, lanes_fwd)]
    lines += [(k * lw, "dash") for k in range(1, lanes_back)]
    lines += [(-lanes_fwd * lw + 0.2, "solid"), (lanes_back * lw - 0.2, "solid")]
    crosswalk = None
    if rng.random() < 0.5:
        c0 = _u(rng, 20.0, 60.0) + travel
        crosswalk = (c0, c0 + 4.0, -lanes_fwd * lw + 0.3, lanes_back * lw - 0.3)
    asphalt = np.array([0.33, 0.33, 0.34]) * _u(rng, 0.8, 1.2) + rng.normal(0, 0.01, 3)
    look = M.StreetLook(
        centerline=cl,
        lane_lines=lines,
        crosswalk=crosswalk,
        asphalt=asphalt.astype(np.float32),
        paint_white=np.array([0.88, 0.88, 0.86], np.float32),
        paint_yellow=np.array([0.85, 0.68, 0.15], np.float32),
        curb=np.array([0.66, 0.65, 0.62], np.float32) * _u(rng, 0.9, 1.1),
        sidewalk=(np.array([0.62, 0.60, 0.57]) * _u(rng, 0.85, 1.15)).astype(np.float32),
        ground=np.array([0.30, 0.42, 0.20], np.float32) * _u(rng, 0.8, 1.2),
        tile=_u(rng, 0.3, 0.6),
        dash=(_u(rng, 2.5, 3.5), _u(rng, 9.0, 12.0)),
    )

    objects: list[SceneObject] = []
    eye = np.eye(4)
    # The street surfaces are one static object in scene coordinates.
    parts = [strip(cl, s_lo, s_hi, 2.0, (-e_right, 0.0), (e_left, 0.0), M.ROAD)]
    for side, e in ((-1.0, e_right), (1.0, e_left)):
        w = walk[0 if side < 0 else 1]
        parts.append(strip(cl, s_lo, s_hi, 2.0, (side * e, 0.0), (side * e, curb_h), M.CURB))
        parts.append(strip(cl, s_lo, s_hi, 2.0, (side * e, curb_h), (side * (e + curb_w), curb_h), M.CURB))
        parts.append(
            strip(
                cl,
                s_lo,
                s_hi,
                2.0,
                (side * (e + curb_w), curb_h),
                (side * (e + curb_w + w), curb_h),
                M.SIDEWALK,
            )
        )
        parts.append(
            strip(
                cl,
                s_lo,
                s_hi,
                4.0,
                (side * (e + curb_w + w), curb_h),
                (side * (e + curb_w + w + 80.0), curb_h),
                M.GROUND,
            )
        )
    far = 3000.0
    mid = cl.point(0.5 * (s_lo + s_hi))
    parts.append(
        quads(
            np.array(
                [
                    [
                        mid + [-far, -far, -0.05],
                        mid + [far, -far, -0.05],
                        mid + [far, far, -0.05],
                        mid + [-far, far, -0.05],
                    ]
                ]
            ),
            M.FAR_GROUND,
        )
    )
    objects.append(SceneObject("street", Mesh.concat(parts), np.zeros(3), pose=eye))

    # Buildings along both sides, and a back row (taller, further out) seen through the gaps.
    style_h = _u(rng, 8.0, 30.0)

    def building(sc: float, d: float, width: float, depth: float, height: float,
                 street_face: float = 0.0) -> None:
        """A block; ``street_face`` ±1: its local ±y face fronts the street (gets balconies)."""
        mats = [M.FACADE] * 4 + [M.ROOF, M.FACADE]
        # Local frame: x along the street, y across (towards +d), origin at the base centre.
        parts = [box((width, depth, height), (0.0, 0.0, 0.0), mats, bottom=False)]
        pose = cl.pose(sc, d, 0.0, curb_h)
        ground_h, floor_h, col_w = _u(rng, 3.4, 4.6), _u(rng, 2.8, 3.5), _u(rng, 2.0, 3.6)
        # ground floor height, floor height, window column spacing, window width (fraction of
        # a column), window height, sill height, door position (fraction of the face width)
        prm = [ground_h, floor_h, col_w, _u(rng, 0.35, 0.6),
               floor_h * _u(rng, 0.4, 0.6), _u(rng, 0.7, 1.0), _u(rng, 0.2, 0.8), 0.0]
        base = _FACADE_COLORS[rng.integers(len(_FACADE_COLORS))] * _u(rng, 0.85, 1.1)
        trim = np.clip(base * _u(rng, 0.5, 1.3) + rng.normal(0, 0.05, 3), 0.05, 0.95)
        variant = int(rng.choice([0, 1, 2], p=[0.5, 0.3, 0.2]))
        if street_face and rng.random() < 0.35:
            # Balconies under windows of the street front: relief for parallax and LiDAR.
            ncol = max(1, round(width / col_w))
            cw = width / ncol
            bd = _u(rng, 0.8, 1.3)
            every = int(rng.integers(1, 3))
            y = street_face * (depth / 2 + bd / 2)
            j = 0
            while ground_h + (j + 1) * floor_h < height - 0.8:
                z = ground_h + j * floor_h
                for k in range(0, ncol, every):
                    xc = -width / 2 + (k + 0.5) * cw
                    parts.append(box((0.9 * cw, bd, 0.15), (xc, y, z), M.BALCONY))
                    rail_y = street_face * (depth / 2 + bd - 0.03)
                    parts.append(box((0.9 * cw, 0.05, 1.0), (xc, rail_y, z + 0.15), M.RAILING))
                j += 1
        objects.append(SceneObject("building", Mesh.concat(parts), base, trim, np.array(prm),
                                   variant, pose, size=(width, depth, height)))

    for side, e in ((-1.0, e_right), (1.0, e_left)):
        line = e + curb_w + walk[0 if side < 0 else 1]
        s = near_lo - _u(rng, 0.0, 10.0)
        while s < near_hi:
            width = _u(rng, 8.0, 26.0)
            if rng.random() < 0.15:
                s += _u(rng, 3.0, 10.0)  # an alley
            depth = _u(rng, 10.0, 18.0)
            height = float(np.clip(rng.normal(style_h, 0.35 * style_h), 5.0, 45.0))
            setback = _u(rng, 0.0, 1.5) if rng.random() < 0.4 else 0.0
            building(s + width / 2, side * (line + setback + depth / 2), width, depth, height,
                     street_face=-side)
            s += width
        s = near_lo - _u(rng, 0.0, 20.0)
        while s < near_hi + 40.0:
            width, depth = _u(rng, 15.0, 40.0), _u(rng, 15.0, 25.0)
            height = float(np.clip(rng.normal(1.4 * style_h, 0.4 * style_h), 8.0, 60.0))
            back = line + 20.0 + _u(rng, 0.0, 12.0)
            building(s + width / 2, side * (back + depth / 2), width, depth, height)
            s += width + (_u(rng, 5.0, 30.0) if rng.random() < 0.3 else 0.0)

    # Sidewalk furniture: street lights, trees, signs, bushes. One occupancy list per side.
    for side, e in ((-1.0, e_right), (1.0, e_left)):
        w = walk[0 if side < 0 else 1]
        kerb = e + curb_w
        used: list[tuple[float, float]] = []

        def free(a, b, used=used):
            return all(b < u0 or a > u1 for u0, u1 in used)

        s = near_lo + _u(rng, 0, 20)
        spacing = _u(rng, 18.0, 32.0)
        pole_col = np.array([0.45, 0.47, 0.5]) * _u(rng, 0.7, 1.3)
        while s < near_hi:
            hgt = _u(rng, 6.0, 8.0)
            arm = _u(rng, 1.2, 2.0)
            pole = cylinder(0.09, 0.0, hgt, 10, M.POLE)
            arm_m = box((0.12, arm, 0.12), (0.0, -arm / 2, hgt - 0.3), M.POLE)
            lamp = box((0.35, 0.6, 0.18), (0.0, -arm, hgt - 0.4), M.LAMP)
            mesh = Mesh.concat([pole, arm_m, lamp])
            # The arm points along local -y: towards the road after a half turn on the right.
            pose = cl.pose(s, side * (kerb + 0.45), np.pi if side < 0 else 0.0, curb_h)
            objects.append(SceneObject("streetlight", mesh, pole_col, pose=pose))
            used.append((s - 1.0, s + 1.0))
            s += spacing
        if rng.random() < 0.75 and w >= 2.5:
            s = near_lo + _u(rng, 0, 10)
            gap = _u(rng, 7.0, 14.0)
            leaf = np.array([0.22, 0.38, 0.14]) * _u(rng, 0.8, 1.2)
            while s < near_hi:
                if free(s - 1.5, s + 1.5):
                    th = _u(rng, 2.0, 3.5)
                    rx, rz = _u(rng, 1.3, 2.4), _u(rng, 1.5, 2.8)
                    trunk = cylinder(_u(rng, 0.1, 0.2), 0.0, th + rz * 0.5, 8, M.TRUNK)
                    crown = ellipsoid(
                        (rx, rx * _u(rng, 0.85, 1.15), rz),
                        (0, 0, th + rz * 0.8),
                        6,
                        10,
                        M.FOLIAGE,
                        jitter=0.35,
                        rng=rng,
                    )
                    pose = cl.pose(s, side * (kerb + min(1.3, w / 2)), _u(rng, 0, 6.28), curb_h)
                    c1 = leaf + rng.normal(0, 0.03, 3)
                    c2 = np.array([0.45, 0.5, 0.18]) * _u(rng, 0.8, 1.2)
                    objects.append(SceneObject("tree", Mesh.concat([trunk, crown]), c1, c2, pose=pose))
                    used.append((s - 1.5, s + 1.5))
                s += gap
        for _ in range(int(rng.integers(0, 3))):
            s = _u(rng, near_lo, near_hi)
            if not free(s - 0.6, s + 0.6):
                continue
            ph = _u(rng, 2.2, 2.8)
            plate = box((0.04, 0.7, 0.7), (0.0, 0.0, ph), M.SIGN)
            mesh = Mesh.concat([cylinder(0.04, 0.0, ph + 0.7, 8, M.POLE), plate])
            # The plate faces oncoming traffic on its side (local +x towards -s on the right).
            pose = cl.pose(s, side * (kerb + 0.35), np.pi if side < 0 else 0.0, curb_h)
            color = _SIGN_COLORS[rng.integers(len(_SIGN_COLORS))]
            objects.append(SceneObject("sign", mesh, color, pose=pose))
            used.append((s - 0.6, s + 0.6))
        for _ in range(int(rng.integers(0, 5))):
            s = _u(rng, near_lo, near_hi)
            r = _u(rng, 0.5, 1.0)
            mesh = ellipsoid((r * 1.5, r, r * 0.8), (0, 0, 0.3), 5, 8, M.FOLIAGE, 0.3, rng)
            pose = cl.pose(s, side * (kerb + w - r * 0.8), 0.0, curb_h)
            c1 = np.array([0.2, 0.35, 0.12]) * _u(rng, 0.8, 1.2)
            objects.append(SceneObject("bush", mesh, c1, c1 * 1.4, pose=pose))

    def car_colors():
        c = _CAR_COLORS[rng.integers(len(_CAR_COLORS))] * _u(rng, 0.9, 1.1)
        return np.clip(c, 0.02, 0.98)

    # Parked cars in the parking strips.
    for side, on in ((-1.0, park[0]), (1.0, park[1])):
        if not on:
            continue
        d = side * ((lanes_fwd if side < 0 else lanes_back) * lw + pw / 2)
        s = near_lo + _u(rng, 0, 6)
        while s < near_hi:
            mesh, size, prm = car_mesh(rng)
            if rng.random() < 0.8:
                yaw = (0.0 if side < 0 else np.pi) + rng.normal(0, 0.02)
                pose = cl.pose(s + size[0] / 2, d + rng.normal(0, 0.08), yaw)
                objects.append(SceneObject("parked_car", mesh, car_colors(), params=prm, pose=pose,
                                           size=size))
            s += size[0] + _u(rng, 0.8, 3.0) + (_u(rng, 5, 15) if rng.random() < 0.2 else 0.0)

    # Pedestrians walking along the sidewalks, away from the kerb-side furniture.
    for side, e in ((-1.0, e_right), (1.0, e_left)):
        w = walk[0 if side < 0 else 1]
        for _ in range(int(rng.integers(0, 7))):
            mesh, size, prm = pedestrian_mesh(rng)
            d = side * (e + curb_w + w * _u(rng, 0.62, 0.85))
            speed = _u(rng, 0.8, 1.7) * (1.0 if rng.random() < 0.5 else -1.0)
            yaw = 0.0 if speed > 0 else np.pi
            top = _CLOTH_COLORS[rng.integers(len(_CLOTH_COLORS))] * _u(rng, 0.8, 1.15)
            bottom = _CLOTH_COLORS[rng.integers(len(_CLOTH_COLORS))] * _u(rng, 0.6, 1.0)
            objects.append(SceneObject("pedestrian", mesh, np.clip(top, 0, 1), np.clip(bottom, 0, 1),
                                       params=prm, motion=(d, _u(rng, near_lo + 20, near_hi - 40),
                                                           speed, yaw),
                                       size=size, z=curb_h))

    # Moving cars: one speed per lane so cars in a lane never collide; the ego lane gets at most
    # a lead car far enough ahead that the gap stays positive for the whole clip.
    lanes = [(-(k + 0.5) * lw, 1.0) for k in range(lanes_fwd)] + [
        ((k + 0.5) * lw, -1.0) for k in range(lanes_back)
    ]
    for d, direction in lanes:
        speed = ego_speed * _u(rng, 0.75, 1.2) if direction > 0 else _u(rng, 6.0, 14.0)
        is_ego = abs(d - ego_d) < 1e-6
        if is_ego:
            speed = ego_speed * _u(rng, 0.95, 1.15)
            if rng.random() < 0.3:
                continue
            s = 12.0 + max(0.0, (ego_speed - speed) * duration) + _u(rng, 0.0, 20.0)
            hi = s + 1.0  # one lead car
        else:
            # Oncoming cars travel towards -s: start them further out so they pass the ego.
            shift = speed * duration if direction < 0 else 0.0
            s = near_lo + 20.0 + _u(rng, 0, 15) + shift * 0.5
            hi = near_hi - 30.0 + shift
        while s < hi:
            mesh, size, prm = car_mesh(rng)
            yaw = 0.0 if direction > 0 else np.pi
            motion = (d, s + size[0] / 2, direction * speed, yaw)
            objects.append(SceneObject("moving_car", mesh, car_colors(), params=prm, motion=motion,
                                       size=size))
            s += size[0] + _u(rng, 8.0, 40.0)

    # Sun and sky: clear or hazy/overcast.
    az = _u(rng, 0.0, 2 * np.pi)
    el = np.radians(_u(rng, 15.0, 60.0))
    sun_dir = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    overcast = rng.random() < 0.2
    if overcast:
        sun_color = np.array([0.35, 0.35, 0.35])
        ambient = np.array([0.75, 0.76, 0.8])
        zenith, horizon = np.array([0.6, 0.63, 0.68]), np.array([0.82, 0.83, 0.85])
        cover = _u(rng, 0.6, 0.9)
        haze = _u(rng, 250.0, 600.0)
    else:
        sun_color = np.array([0.72, 0.68, 0.6]) * _u(rng, 0.9, 1.1)
        ambient = np.array([0.42, 0.45, 0.52]) * _u(rng, 0.9, 1.1)
        zenith = np.array([0.25, 0.45, 0.8]) * _u(rng, 0.85, 1.1)
        horizon = np.array([0.72, 0.8, 0.9]) * _u(rng, 0.9, 1.05)
        cover = _u(rng, 0.0, 0.5)
        haze = _u(rng, 500.0, 1500.0)
    info = {
        "curvature": kappa,
        "lane_width": lw,
        "lanes_forward": lanes_fwd,
        "lanes_oncoming": lanes_back,
        "parking": [bool(p) for p in park],
        "curb_height": curb_h,
        "sidewalk_width": walk,
        "ego_lane": ego_lane,
        "overcast": bool(overcast),
    }
    return Layout(cl, look, objects, ego_d, 0.0, ego_speed, sun_dir, sun_color, ambient, zenith,
                  horizon, cover, info, haze)
