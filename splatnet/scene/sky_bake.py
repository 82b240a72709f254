"""The sky as Gaussians, for viewers that know nothing of splatnet's sky model.

splatnet fills each pixel's leftover transmittance with its sky model's colour for that ray
(``rgb + (1 − alpha) · sky``, :meth:`Scene.render`). A viewer draws only Gaussians, so an exported
scene shows no sky. :func:`sky_shell` bakes the sky into a shell of Gaussians far beyond
everything else: one flat, opaque disc facing the centre per direction of a Fibonacci sphere,
coloured with the sky model's colour in that direction. Drawn last (it is farther than every
other Gaussian), the shell takes exactly the transmittance the sky would, and because it is far
the colour a camera near the centre sees in a direction is the sky's colour there, up to the
parallax ``camera offset / radius`` and the colour step between neighbouring discs (the sky
model is smooth). docs/formats.md gives the measured agreement.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from splatnet.errors import ValidationError
from splatnet.gaussians import Gaussians
from splatnet.sh import SH_C0

#: Angle between neighbouring discs (degrees) and disc size relative to it; measured on the
#: bundled clip (docs/formats.md).
DEFAULT_SPACING_DEG = 1.0
DISC_SIGMA = 0.8
SHELL_OPACITY = 0.99


def fibonacci_directions(n: int) -> np.ndarray:
    """``[n, 3]`` unit vectors spread evenly over the sphere (golden-angle spiral)."""
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    r = np.sqrt(np.maximum(0.0, 1.0 - z * z))
    phi = i * math.pi * (3.0 - math.sqrt(5.0))
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def _quats_z_to(d: np.ndarray) -> np.ndarray:
    """w-x-y-z quaternions turning +z onto each unit vector ``d [N, 3]`` (shortest arc)."""
    w = 1.0 + d[:, 2]
    q = np.stack([w, -d[:, 1], d[:, 0], np.zeros(len(d))], axis=1)  # (1 + z·d, z × d)
    flip = w < 1e-9  # d = -z: any half turn about a horizontal axis
    q[flip] = [0.0, 1.0, 0.0, 0.0]
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def sky_shell(scene, *, spacing_deg: float = DEFAULT_SPACING_DEG, radius: float | None = None,
              sh_degree: int = 0) -> Gaussians:
    """Gaussians that draw ``scene``'s sky in any viewer (see the module docstring).

    Args:
        scene: a :class:`~splatnet.scene.Scene` with a sky.
        spacing_deg: angle between neighbouring discs (1° gives ~41,000 Gaussians).
        radius: shell radius in metres around the ego trajectory's centre; default twice the
            distance of the farthest background Gaussian or actor track point from it, at least
            100 m.
        sh_degree: SH degree of the result (bands above 0 are zero), to match the scene's.

    Returns unbatched float32 CPU Gaussians in the scene's world frame.
    """
    if scene.sky is None:
        raise ValidationError("bake sky: the scene has no sky model to bake")
    if not (math.isfinite(spacing_deg) and 0.1 <= spacing_deg <= 20.0):
        raise ValidationError(f"bake sky: spacing {spacing_deg!r} degrees, expected 0.1 to 20")
    ego = np.asarray(scene.ego_to_world)[:, :3, 3]
    centre = ego.mean(axis=0)
    if radius is None:
        far = float(np.linalg.norm(ego - centre, axis=1).max())
        bg = scene.background.means.detach().to("cpu", torch.float64).numpy()
        if len(bg):
            far = max(far, float(np.linalg.norm(bg - centre, axis=1).max()))
        for a in scene.actors.values():
            pts = np.asarray(a.track.box_to_world)[:, :3, 3]
            far = max(far, float(np.linalg.norm(pts - centre, axis=1).max() + np.linalg.norm(a.size)))
        radius = max(100.0, 2.0 * far)
    if not (math.isfinite(radius) and radius > 0):
        raise ValidationError(f"bake sky: radius {radius!r} m, expected a positive number")
    step = math.radians(spacing_deg)
    n = math.ceil(4.0 * math.pi / step ** 2)
    dirs = fibonacci_directions(n)
    with torch.no_grad():
        sky = scene.sky
        d = torch.from_numpy(dirs).to(sky.latent.device, sky.latent.dtype)[None]
        rgb = sky(d)[0].to("cpu", torch.float64).numpy()  # [n, 3] in [0, 1]
    sigma = DISC_SIGMA * step * radius
    k = (sh_degree + 1) ** 2
    sh = np.zeros((n, k, 3))
    sh[:, 0] = (rgb - 0.5) / SH_C0
    scales = np.tile([sigma, sigma, sigma * 1e-2], (n, 1))
    fields = [centre + radius * dirs, _quats_z_to(dirs), scales, np.full(n, SHELL_OPACITY), sh]
    return Gaussians(*(torch.from_numpy(np.ascontiguousarray(f)).float() for f in fields))
