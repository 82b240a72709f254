"""Solid procedural textures: hashed value noise and box-filtered patterns, vectorised in numpy.

Everything here is evaluated at 3D points (or 1D/2D pattern coordinates) of *all* the rays of a
material at once. Patterns are box-filtered over the pixel footprint (the width on the surface
that one pixel covers) so distant stripes and windows average out instead of aliasing; noise
octaves finer than the footprint fade to their mean for the same reason.
"""

from __future__ import annotations

import numpy as np

# Large odd multipliers of the classic spatial hash (Teschner et al. 2003).
_P1, _P2, _P3 = 73856093, 19349663, 83492791
_TABLE_BITS = 16


class Noise:
    """Value noise on the integer lattice with a seeded random table.

    ``value(p)`` is a smooth function of ``p`` with values in ``[0, 1]`` and features about
    one unit across; ``fbm`` sums octaves. ``cell(*ints)`` is a per-cell random number
    (e.g. the colour of one brick or one window).
    """

    def __init__(self, rng: np.random.Generator):
        self.table = rng.random(1 << _TABLE_BITS).astype(np.float32)  # [65536]
        self.mask = (1 << _TABLE_BITS) - 1

    def _lookup(self, h: np.ndarray) -> np.ndarray:
        h = h ^ (h >> 15)
        return self.table[h & self.mask]

    def cell(self, *ints: np.ndarray) -> np.ndarray:
        """A random value in ``[0, 1)`` per integer cell (same cell → same value)."""
        h = np.zeros(np.broadcast(*ints).shape, dtype=np.int64)
        for k, v in enumerate(ints):
            h = h ^ (np.asarray(v, dtype=np.int64) * (_P1, _P2, _P3, 2654435761)[k % 4])
        return self._lookup(h)

    def value(self, p: np.ndarray) -> np.ndarray:
        """Trilinear value noise with smoothstep weights. ``p [N, 3]`` → ``[N]`` in [0, 1]."""
        fl = np.floor(p)
        f = (p - fl).astype(np.float32)  # [N, 3]
        w = f * f * (3.0 - 2.0 * f)
        i = fl.astype(np.int64)
        hx = (i[:, 0] * _P1, (i[:, 0] + 1) * _P1)
        hy = (i[:, 1] * _P2, (i[:, 1] + 1) * _P2)
        hz = (i[:, 2] * _P3, (i[:, 2] + 1) * _P3)
        wx, wy, wz = w[:, 0], w[:, 1], w[:, 2]
        out = None
        for a in (0, 1):
            for b in (0, 1):
                hab = hx[a] ^ hy[b]
                v0 = self._lookup(hab ^ hz[0])
                v1 = self._lookup(hab ^ hz[1])
                vz = v0 + (v1 - v0) * wz
                wab = (wx if a else 1.0 - wx) * (wy if b else 1.0 - wy)
                out = vz * wab if out is None else out + vz * wab
        return out

    def fbm(
        self,
        p: np.ndarray,
        freq: float,
        octaves: int,
        footprint: np.ndarray | None = None,
        gain: float = 0.5,
        lacunarity: float = 2.03,
    ) -> np.ndarray:
        """Fractal sum of ``octaves`` noise octaves starting at ``freq`` (cycles per unit).

        Returns values centred on 0.5, roughly within [0, 1]. Octaves whose features are
        smaller than ``footprint`` (world units per pixel) fade to 0.5.
        """
        total = np.zeros(p.shape[0], dtype=np.float32)
        amp, norm, f = 1.0, 0.0, freq
        for o in range(octaves):
            # Offset each octave so lattice points do not line up across octaves.
            if footprint is None:
                total += amp * (self.value(p * f + (17.31 * o)) - 0.5)
            else:
                # Evaluate only where the octave has not faded out (distant pixels skip it).
                fade = lod_fade(f * footprint)
                k = np.nonzero(fade > 0)[0]
                if k.size == fade.size:
                    total += amp * ((self.value(p * f + (17.31 * o)) - 0.5) * fade)
                elif k.size:
                    total[k] += amp * ((self.value(p[k] * f + (17.31 * o)) - 0.5) * fade[k])
            norm += amp
            amp *= gain
            f *= lacunarity
        return 0.5 + total / norm * 1.6


def lod_fade(cycles_per_pixel: np.ndarray) -> np.ndarray:
    """1 for features much larger than a pixel, 0 once a feature is under about a pixel."""
    return np.clip(1.5 - 2.0 * cycles_per_pixel, 0.0, 1.0).astype(np.float32)


def box(x: np.ndarray, lo, hi, fw: np.ndarray) -> np.ndarray:
    """Fraction of ``[x - fw/2, x + fw/2]`` inside ``[lo, hi]`` (a box-filtered interval)."""
    fw = np.maximum(fw, 1e-4)
    a = np.maximum(x - 0.5 * fw, lo)
    b = np.minimum(x + 0.5 * fw, hi)
    return np.clip((b - a) / fw, 0.0, 1.0).astype(np.float32)


def pulse(x: np.ndarray, period, lo, hi, fw: np.ndarray) -> np.ndarray:
    """Box-filtered periodic pulse train: 1 where ``x mod period`` lies in ``[lo, hi]``.

    Exact box filter of width ``fw`` via the pulse train's integral, so it stays correct for
    footprints wider than a period (it then tends to the duty cycle).
    """
    fw = np.maximum(fw, 1e-4)
    width = np.asarray(hi) - np.asarray(lo)

    def integral(y):
        k = np.floor(y / period)
        return k * width + np.clip(y - k * period - lo, 0.0, width)

    return np.clip((integral(x + 0.5 * fw) - integral(x - 0.5 * fw)) / fw, 0.0, 1.0).astype(np.float32)


def mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Linear blend of colours ``a``, ``b`` (``[N, 3]`` or ``[3]``) by ``t [N]``."""
    t = t[:, None]
    return a * (1.0 - t) + b * t
