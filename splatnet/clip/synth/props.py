"""Meshes of the things on a street, each in its own local frame (x forward, y left, z up,
origin on the ground): cars, pedestrians, buildings, street lights, trees, signs, bushes.

Every builder draws its random shape from the generator it is given and returns the mesh with
the shading parameters its materials read (see :mod:`splatnet.clip.synth.materials`).
"""

from __future__ import annotations

import numpy as np

from splatnet.clip.synth import materials as M
from splatnet.clip.synth.meshes import Mesh, axis_y, box, cylinder, ellipsoid

CAR_COLORS = np.array([
    [0.92, 0.92, 0.90], [0.08, 0.08, 0.09], [0.62, 0.63, 0.65], [0.40, 0.41, 0.43],
    [0.62, 0.08, 0.07], [0.10, 0.20, 0.50], [0.13, 0.30, 0.18], [0.80, 0.65, 0.20],
    [0.85, 0.40, 0.10], [0.35, 0.55, 0.75], [0.55, 0.45, 0.35], [0.30, 0.10, 0.30],
])
FACADE_COLORS = np.array([
    [0.82, 0.78, 0.70], [0.70, 0.45, 0.35], [0.60, 0.58, 0.55], [0.85, 0.82, 0.74],
    [0.55, 0.35, 0.28], [0.72, 0.70, 0.62], [0.45, 0.50, 0.55], [0.88, 0.75, 0.55],
    [0.65, 0.55, 0.45], [0.78, 0.62, 0.50], [0.50, 0.52, 0.48], [0.90, 0.88, 0.84],
])
SIGN_COLORS = np.array([[0.75, 0.08, 0.08], [0.08, 0.25, 0.65], [0.10, 0.45, 0.20],
                        [0.90, 0.75, 0.10]])
CLOTH_COLORS = np.array([
    [0.15, 0.15, 0.18], [0.85, 0.85, 0.82], [0.20, 0.28, 0.50], [0.55, 0.12, 0.12],
    [0.25, 0.40, 0.25], [0.70, 0.60, 0.40], [0.45, 0.45, 0.48], [0.90, 0.70, 0.20],
])
SKIN_TONES = np.array([[0.85, 0.68, 0.55], [0.72, 0.53, 0.40], [0.50, 0.35, 0.25],
                       [0.35, 0.24, 0.17]])


def uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def pick(rng: np.random.Generator, table: np.ndarray) -> np.ndarray:
    return table[rng.integers(len(table))]


def car(rng: np.random.Generator) -> tuple[Mesh, tuple, np.ndarray, np.ndarray]:
    """A car: body, cabin with sloped windscreens, wheels.

    Returns ``(mesh, (length, width, height), params, colour)``; ``params`` is the cabin
    outline the glass shader needs (x range, base height, height, front/back taper).
    """
    u = lambda lo, hi: uniform(rng, lo, hi)  # noqa: E731
    kind = rng.choice(["sedan", "hatch", "suv", "van"], p=[0.4, 0.25, 0.25, 0.1])
    # length, width, body bottom/top, cabin length (fraction), cabin height, cabin offset
    if kind == "sedan":
        L, W, z0, z1, cl, ch, cx = u(4.3, 4.9), u(1.75, 1.85), 0.28, 0.95, 0.5, 0.5, -0.08
    elif kind == "hatch":
        L, W, z0, z1, cl, ch, cx = u(3.7, 4.2), u(1.68, 1.8), 0.28, 0.95, 0.58, 0.52, -0.1
    elif kind == "suv":
        L, W, z0, z1, cl, ch, cx = u(4.5, 4.9), u(1.85, 1.95), 0.35, 1.1, 0.62, 0.58, -0.08
    else:
        L, W, z0, z1, cl, ch, cx = u(4.8, 5.3), u(1.9, 2.0), 0.35, 1.2, 0.74, 0.85, -0.1
    body_mats = [M.CAR_FRONT, M.CAR_REAR, M.CAR_BODY, M.CAR_BODY, M.CAR_BODY, M.CAR_BODY]
    body = box((L, W, z1 - z0), (0.0, 0.0, z0), body_mats)
    cab_mats = [M.CAR_GLASS, M.CAR_GLASS, M.CAR_GLASS, M.CAR_GLASS, M.CAR_BODY, M.CAR_BODY]
    # Sloped windscreens: the cabin's roof is shorter than its base.
    tf = ch * (u(0.9, 1.4) if kind != "van" else 0.35)
    tb = ch * (u(0.3, 0.8) if kind in ("sedan", "suv") else 0.15)
    cabin = box((cl * L, W - 0.14, ch), (cx * L, 0.0, z1), cab_mats, bottom=False, taper=(tf, tb))
    r = u(0.3, 0.35)
    parts = [body, cabin]
    for x in (L / 2 - 0.8, -(L / 2 - 0.85)):
        for side in (1.0, -1.0):
            wheel = cylinder(r, -0.11, 0.11, 12, M.WHEEL)
            parts.append(axis_y(wheel, (x, side * (W / 2 - 0.1), r)))
    x0 = cx * L - cl * L / 2
    params = np.array([x0, x0 + cl * L, z1, ch, tf, tb, 0.0, 0.0])
    color = np.clip(pick(rng, CAR_COLORS) * u(0.9, 1.1), 0.02, 0.98)
    return Mesh.concat(parts), (L, W, z1 + ch), params, color


def pedestrian(rng: np.random.Generator) -> tuple[Mesh, tuple, np.ndarray, np.ndarray,
                                                  np.ndarray]:
    """A standing figure (legs, torso, arms, head) facing local +x, feet at z = 0.

    Returns ``(mesh, (length, width, height), params, shirt colour, trouser colour)``;
    ``params`` = hip height, hair tone, skin colour (3).
    """
    k = uniform(rng, 1.55, 1.9) / 1.75
    hip, shoulder = 0.9 * k, 1.45 * k
    legs = [box((0.16, 0.14, hip), (rng.normal(0, 0.06), y * 0.1, 0.0), M.CLOTHES)
            for y in (-1.0, 1.0)]
    torso = box((0.24, 0.42 * k, shoulder - hip), (0.0, 0.0, hip), M.CLOTHES)
    arms = [box((0.12, 0.1, 0.62 * k), (rng.normal(0, 0.05), y * 0.27 * k, shoulder - 0.62 * k),
                M.CLOTHES) for y in (-1.0, 1.0)]
    head = ellipsoid((0.1 * k, 0.085 * k, 0.12 * k), (0.0, 0.0, shoulder + 0.16 * k), 5, 8, M.SKIN)
    params = np.array([hip, uniform(rng, 0.3, 1.0), *pick(rng, SKIN_TONES), 0.0, 0.0, 0.0])
    top = np.clip(pick(rng, CLOTH_COLORS) * uniform(rng, 0.8, 1.15), 0, 1)
    bottom = np.clip(pick(rng, CLOTH_COLORS) * uniform(rng, 0.6, 1.0), 0, 1)
    size = (0.3, 0.6 * k, shoulder + 0.28 * k)
    return Mesh.concat([*legs, torso, *arms, head]), size, params, top, bottom


def building(rng: np.random.Generator, width: float, depth: float, height: float,
             street_face: float = 0.0) -> tuple[Mesh, np.ndarray, np.ndarray, np.ndarray, int]:
    """A block centred on the origin; ``street_face`` ±1: its local ±y face fronts the street
    (and may get balconies), 0: none does.

    Returns ``(mesh, params, wall colour, trim colour, wall variant)`` with ``params`` = ground
    floor height, floor height, window column spacing, window width (fraction of a column),
    window height, sill height, door position (fraction of the face width).
    """
    u = lambda lo, hi: uniform(rng, lo, hi)  # noqa: E731
    mats = [M.FACADE] * 4 + [M.ROOF, M.FACADE]
    parts = [box((width, depth, height), (0.0, 0.0, 0.0), mats, bottom=False)]
    ground_h, floor_h, col_w = u(3.4, 4.6), u(2.8, 3.5), u(2.0, 3.6)
    params = np.array([ground_h, floor_h, col_w, u(0.35, 0.6), floor_h * u(0.4, 0.6),
                       u(0.7, 1.0), u(0.2, 0.8), 0.0])
    base = pick(rng, FACADE_COLORS) * u(0.85, 1.1)
    trim = np.clip(base * u(0.5, 1.3) + rng.normal(0, 0.05, 3), 0.05, 0.95)
    variant = int(rng.choice([0, 1, 2], p=[0.5, 0.3, 0.2]))  # plaster, brick, panels
    if street_face and rng.random() < 0.35:
        # Balconies under the windows of the street front: relief for parallax and LiDAR.
        ncol = max(1, round(width / col_w))
        cw = width / ncol
        bd = u(0.8, 1.3)
        every = int(rng.integers(1, 3))
        y = street_face * (depth / 2 + bd / 2)
        rail_y = street_face * (depth / 2 + bd - 0.03)
        j = 0
        while ground_h + (j + 1) * floor_h < height - 0.8:
            z = ground_h + j * floor_h
            for c in range(0, ncol, every):
                xc = -width / 2 + (c + 0.5) * cw
                parts.append(box((0.9 * cw, bd, 0.15), (xc, y, z), M.BALCONY))
                parts.append(box((0.9 * cw, 0.05, 1.0), (xc, rail_y, z + 0.15), M.RAILING))
            j += 1
    return Mesh.concat(parts), params, base, trim, variant


def streetlight(rng: np.random.Generator) -> Mesh:
    """A pole with an arm along local -y ending in a lamp."""
    hgt, arm = uniform(rng, 6.0, 8.0), uniform(rng, 1.2, 2.0)
    pole = cylinder(0.09, 0.0, hgt, 10, M.POLE)
    arm_m = box((0.12, arm, 0.12), (0.0, -arm / 2, hgt - 0.3), M.POLE)
    lamp = box((0.35, 0.6, 0.18), (0.0, -arm, hgt - 0.4), M.LAMP)
    return Mesh.concat([pole, arm_m, lamp])


def tree(rng: np.random.Generator, leaf: np.ndarray) -> tuple[Mesh, np.ndarray, np.ndarray]:
    """Trunk and a lumpy crown; returns ``(mesh, leaf colour, second leaf colour)``."""
    th = uniform(rng, 2.0, 3.5)
    rx, rz = uniform(rng, 1.3, 2.4), uniform(rng, 1.5, 2.8)
    trunk = cylinder(uniform(rng, 0.1, 0.2), 0.0, th + rz * 0.5, 8, M.TRUNK)
    crown = ellipsoid((rx, rx * uniform(rng, 0.85, 1.15), rz), (0, 0, th + rz * 0.8), 6, 10,
                      M.FOLIAGE, jitter=0.35, rng=rng)
    c1 = leaf + rng.normal(0, 0.03, 3)
    c2 = np.array([0.45, 0.5, 0.18]) * uniform(rng, 0.8, 1.2)
    return Mesh.concat([trunk, crown]), c1, c2


def sign(rng: np.random.Generator) -> tuple[Mesh, np.ndarray]:
    """A square plate facing local ±x on a thin pole; returns ``(mesh, colour)``."""
    ph = uniform(rng, 2.2, 2.8)
    plate = box((0.04, 0.7, 0.7), (0.0, 0.0, ph), M.SIGN)
    return Mesh.concat([cylinder(0.04, 0.0, ph + 0.7, 8, M.POLE), plate]), pick(rng, SIGN_COLORS)


#: Bushes hug the facades: half their depth (local y extent is ±BUSH_HALF_DEPTH).
BUSH_HALF_DEPTH = 0.45


def bush(rng: np.random.Generator) -> tuple[Mesh, np.ndarray]:
    """A low lumpy hedge piece; returns ``(mesh, colour)``."""
    r = uniform(rng, 0.5, 1.0)
    mesh = ellipsoid((r * 1.5, BUSH_HALF_DEPTH, r * 0.8), (0, 0, 0.3), 5, 8, M.FOLIAGE, 0.3, rng)
    return mesh, np.array([0.2, 0.35, 0.12]) * uniform(rng, 0.8, 1.2)
