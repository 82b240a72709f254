"""LiDAR depth fusion: put the network's pixel-aligned Gaussians at the depth LiDAR measured.

The network takes LiDAR as a sparse input to its depth network, but what it predicts from it is
still a learned guess: on real clips its depth is off by 20–37 % (abs. rel.) against the very
points it was given. Where a scene has LiDAR the Gaussians can simply be moved there:

1. the LiDAR points (all context frames, world frame) are projected into every view's Gaussian
   grid: the camera depth ``z_L`` of the nearest point per cell (:func:`splatnet.cameras.sparse_depth`);
2. in a cell with a point the log depth ratio ``r = log z_L − log z`` is measured; everywhere
   else it is filled in by normalised convolution (Knutsson & Westin 1993) at a sequence of
   Gaussian widths, finest first: a cell takes the finest scale at which any point is near;
3. each Gaussian is moved along its own camera ray by ``exp(r)`` (centre ``c + e^r (μ − c)``)
   and its scales multiplied by the same factor, so its footprint in the view it was predicted
   from does not change: the view's own image is unchanged to first order, only its geometry
   seen from elsewhere is corrected.

A cell with a point takes the LiDAR depth exactly; in the rest (the sky, above the LiDAR's field
of view) the network's relative depth is kept and only rescaled like its neighbours. The ratio
field carries no gradient (``detach``): training through the fusion still teaches the network's
depth, colours, opacities and scales, and the depth loss reads the head's own depth
(``SplatNetOutput.network_depth``).

Measured in docs/benchmarks.md ("LiDAR depth fusion").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from splatnet.gaussians import Gaussians

#: Below this weight a scale has no LiDAR point near a cell (a normalised convolution's
#: denominator, relative to one point at the kernel's centre).
_MIN_WEIGHT = 1e-4


def _gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of ``[N, 1, h, w]``, borders replicated.

    Wide kernels run on a grid pooled by ``k = ⌊σ / 2⌋`` (box averages of ``k × k`` cells, the
    blur at ``σ / k``, bilinear back): the same smooth field at a ``k²``-th of the work.
    """
    k = int(sigma // 2)
    if k >= 2:
        h, w = x.shape[-2:]
        small = F.avg_pool2d(x, k, ceil_mode=True, count_include_pad=False)
        small = _exact_blur(small, sigma / k)
        return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    return _exact_blur(x, sigma)


def _exact_blur(x: Tensor, sigma: float) -> Tensor:
    r = max(1, int(3.0 * sigma + 0.5))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))


def fill_sparse(values: Tensor, mask: Tensor, sigmas: tuple[float, ...]) -> tuple[Tensor, Tensor]:
    """Fill a sparse field by normalised convolution, finest scale first.

    Args:
        values: ``[N, 1, h, w]`` values, read where ``mask``.
        mask: ``[N, 1, h, w]`` bool, where ``values`` are measured.
        sigmas: Gaussian widths in cells, increasing.
    Returns:
        ``(filled, covered)``: ``filled [N, 1, h, w]`` is the values where measured, else the
        weighted mean of measured values at the finest width with any weight there; ``covered``
        is False where no width reached (those cells hold 0).
    """
    m = mask.to(values.dtype)
    filled = torch.where(mask, values, torch.zeros_like(values))
    covered = mask.clone()
    for s in sigmas:
        if bool(covered.all()):
            break
        den = _gaussian_blur(m, s)
        num = _gaussian_blur(values * m, s)
        reach = den > _MIN_WEIGHT
        est = num / den.clamp_min(_MIN_WEIGHT)
        take = reach & ~covered
        filled = torch.where(take, est, filled)
        covered = covered | reach
    return filled, covered


def depth_log_ratio(depth: Tensor, lidar_depth: Tensor, sigmas: tuple[float, ...],
                    max_ratio: float) -> Tensor:
    """``[B, V, 1, h, w]`` log of the factor that takes ``depth`` to the LiDAR's.

    ``lidar_depth`` is ``[B, V, 1, h, w]`` camera z of the nearest LiDAR point per cell (0:
    none). A view without points gets 0 (its depth stays the network's). The factor is bounded
    to ``[1 / max_ratio, max_ratio]``. No gradient flows through it.
    """
    with torch.no_grad():
        b, v, _, h, w = depth.shape
        z = depth.detach().float().reshape(b * v, 1, h, w)
        zl = lidar_depth.detach().float().reshape(b * v, 1, h, w)
        mask = zl > 0
        r = torch.log(zl.clamp_min(1e-6)) - torch.log(z.clamp_min(1e-6))
        bound = math.log(max_ratio)
        r = r.clamp(-bound, bound)
        # Every filled value is a weighted mean of bounded ones (positive weights), so in bounds.
        filled, covered = fill_sparse(r, mask, sigmas)
        filled = torch.where(covered, filled, torch.zeros_like(filled))
    return filled.reshape(b, v, 1, h, w).to(depth.dtype)


def move_along_rays(gaussians: Gaussians, centers: Tensor, log_ratio: Tensor) -> Gaussians:
    """Gaussians ``[B, N = V·h·w]`` (ordered view, row, column) moved along their cameras' rays.

    ``centers [B, V, 3]`` are the views' camera centres; each Gaussian of view ``v`` at cell
    ``(i, j)`` gets centre ``c_v + f (μ − c_v)`` and scales ``f · s`` with
    ``f = exp(log_ratio[b, v, 0, i, j])``. Rotations, colours, opacities (and velocities: a
    rate, not a position) are unchanged.
    """
    b, v, _, h, w = log_ratio.shape
    g = gaussians
    f = torch.exp(log_ratio).to(g.means.dtype).reshape(b, v, h * w, 1)
    means = g.means.reshape(b, v, h * w, 3)
    c = centers.to(means.dtype)[:, :, None, :]
    fields = g.fields()
    fields["means"] = (c + f * (means - c)).reshape(b, v * h * w, 3)
    fields["scales"] = (g.scales.reshape(b, v, h * w, 3) * f).reshape(b, v * h * w, 3)
    return Gaussians(**fields, check=False)
