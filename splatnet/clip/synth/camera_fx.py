"""Image effects of a real camera, applied to a rendered float image ``[H, W, 3]`` in [0, 1]:
exposure and white balance, vignetting, sensor noise, JPEG, and the ego's own hood.

Each function is pure; the random draws come from generators the caller seeds per clip,
camera and frame (see :class:`CameraLook` and ``pipeline.render_clip``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

#: Body colours of the ego car the hood is painted in (white, black, silver, grey, dark blue,
#: dark red): the commonest car colours.
HOOD_COLOURS = np.array([[0.82, 0.82, 0.8], [0.05, 0.05, 0.06], [0.55, 0.56, 0.57],
                         [0.3, 0.31, 0.32], [0.07, 0.1, 0.25], [0.42, 0.06, 0.05]], np.float32)


def draw_gains(rng: np.random.Generator, stops: float, white_balance: float) -> np.ndarray:
    """Per-channel gains ``[3]`` of one camera: exposure ``2**u``, ``u ~ U[-stops, stops]``,
    times white balance (red and blue ``~ U[1 - wb, 1 + wb]``, green 1). Always three draws."""
    u = rng.uniform(-1.0, 1.0, 3)
    exposure = 2.0 ** (stops * u[0])
    wb = np.array([1.0 + white_balance * u[1], 1.0, 1.0 + white_balance * u[2]])
    return (exposure * wb).astype(np.float32)


def auto_exposure_gain(img: np.ndarray, target: float, lo: float = 0.25, hi: float = 8.0) -> float:
    """The gain ``g`` in ``[lo, hi]`` whose clipped image ``min(g · img, 1)`` has mean
    ``target`` (bisection in log gain; the mean only grows with ``g``)."""
    a, b = np.log(lo), np.log(hi)
    for _ in range(40):
        m = 0.5 * (a + b)
        if np.minimum(img * np.exp(m), 1.0).mean() < target:
            a = m
        else:
            b = m
    return float(np.exp(0.5 * (a + b)))


def vignette(K: np.ndarray, height: int, width: int, strength: float) -> np.ndarray:
    """Brightness factor ``[H, W]``: natural (cos^4) vignetting about the principal point,
    scaled so that the corner of a centred image (half the diagonal off axis) gets
    ``1 - strength`` and the optical centre 1."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    x, y = (xs - K[0, 2]) / K[0, 0], (ys - K[1, 2]) / K[1, 1]
    loss = 1.0 - 1.0 / (1.0 + x * x + y * y) ** 2  # 1 - cos^4 of the angle off axis
    xc, yc = 0.5 * width / K[0, 0], 0.5 * height / K[1, 1]
    loss_corner = 1.0 - 1.0 / (1.0 + xc * xc + yc * yc) ** 2
    return (1.0 - strength * loss / loss_corner).astype(np.float32)


def sensor_noise(img: np.ndarray, rng: np.random.Generator, read: float, shot: float) -> np.ndarray:
    """``img`` plus Gaussian noise of variance ``read² + shot² · img`` (photon noise grows with
    the signal, read noise does not)."""
    std = np.sqrt(read * read + shot * shot * np.clip(img, 0.0, 1.0))
    return img + std * rng.standard_normal(img.shape, dtype=np.float32)


def to_uint8(img: np.ndarray) -> np.ndarray:
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    """``img`` (uint8 ``[H, W, 3]``) encoded as a baseline 4:2:0 JPEG at ``quality`` and decoded."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(quality), subsampling=2)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB")).copy()


@dataclass
class Hood:
    """The ego's hood seen at the bottom of one camera's image.

    Its edge is the row ``H · (1 - height · (1 - curve · x²) + tilt · height · x)`` with
    ``x`` in [-1, 1] across the image: highest at the centre, falling towards the sides by
    ``curve`` of its height, tilted for cameras that look past a corner of the car.
    """

    height: float  # fraction of the image height at the centre column
    curve: float
    tilt: float
    color: np.ndarray  # [3] body albedo

    def edge(self, height: int, width: int) -> np.ndarray:
        """Row (pixels from the top, continuous) of the edge at each column centre ``[W]``."""
        x = (np.arange(width) + 0.5) / width * 2.0 - 1.0
        return height * (1.0 - self.height * (1.0 - self.curve * x * x) + self.tilt * self.height * x)

    def coverage(self, height: int, width: int) -> np.ndarray:
        """Fraction ``[H, W]`` of each pixel's height below the edge (anti-aliased boundary)."""
        top = np.arange(height, dtype=np.float64)[:, None]  # pixel row covers [top, top + 1)
        return np.clip(top + 1.0 - self.edge(height, width)[None], 0.0, 1.0).astype(np.float32)


def draw_hood(rng: np.random.Generator, heights: tuple[float, float], color: np.ndarray) -> Hood:
    u = rng.random(3)
    return Hood(float(heights[0] + (heights[1] - heights[0]) * u[0]), float(0.2 + 0.7 * u[1]),
                float(0.5 * (u[2] - 0.5)), color)


def apply_hood(img: np.ndarray, hood: Hood, light: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Paint the hood over ``img``; returns ``(image, coverage [H, W])``.

    The hood is lit like an upward-facing surface (``light [3]``: ambient + sun on a horizontal
    plane), darker towards the bottom, and being glossy and seen at a grazing angle it mirrors
    the scene just above its edge, more so near the edge (Fresnel).
    """
    h, w = img.shape[:2]
    cov = hood.coverage(h, w)
    edge = hood.edge(h, w)  # [W]
    rows = np.arange(h, dtype=np.float64)[:, None] + 0.5
    below = np.maximum(rows - edge[None], 0.0)  # [H, W] pixels below the edge
    depth = np.clip(below / np.maximum(h - edge[None], 1.0), 0.0, 1.0)
    src = np.clip(np.floor(edge[None] - below), 0, h - 1).astype(np.int64)  # mirrored row
    reflection = img[src, np.arange(w)[None]]
    diffuse = hood.color[None, None] * light[None, None] * (0.9 - 0.35 * depth)[..., None]
    fresnel = (0.35 - 0.25 * depth)[..., None]
    paint = diffuse * (1.0 - fresnel) + reflection * fresnel
    out = img * (1.0 - cov[..., None]) + paint * cov[..., None]
    return out.astype(np.float32), cov


@dataclass
class CameraLook:
    """One camera's effects that do not change over the clip: per-channel gains, vignetting
    factor and hood (None: none)."""

    gains: np.ndarray | None  # [3]
    vignette: np.ndarray | None  # [H, W]
    hood: Hood | None


def finish(img: np.ndarray, look: CameraLook, noise_rng: np.random.Generator | None,
           read: float, shot: float, jpeg_quality: int, gain: float = 1.0) -> np.ndarray:
    """Vignetting (already applied if ``look.vignette`` is None), ``gain`` times the look's
    gains (clipped at white), sensor noise, 8-bit quantisation and JPEG of one rendered float
    image (hood and motion blur already applied) → uint8 ``[H, W, 3]``."""
    if look.vignette is not None:
        img = img * look.vignette[..., None]
    if look.gains is not None or gain != 1.0:
        gains = np.float32(gain) * (look.gains if look.gains is not None else np.ones(3, np.float32))
        img = np.minimum(img * gains[None, None], 1.0)
    if noise_rng is not None:
        img = sensor_noise(img, noise_rng, read, shot)
    out = to_uint8(img)
    if jpeg_quality:
        out = jpeg_roundtrip(out, jpeg_quality)
    return out
