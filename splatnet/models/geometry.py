"""Camera geometry shared by the network, the Gaussian head and the losses.

Conventions (``docs/conventions.md``): OpenCV camera frame, ``K`` in pixels, pixel centres at
``x + 0.5``. A feature map of ``h × w`` cells over an image of ``H × W`` pixels has cells of
``H / h × W / w`` pixels; cell ``(i, j)`` is centred at pixel coordinates
``((j + 0.5) · W / w, (i + 0.5) · H / h)``. Depth is always camera-space ``z`` (never distance
along the ray).
"""

from __future__ import annotations

import torch
from torch import Tensor


def no_autocast(device: torch.device | str):
    """Context that disables autocast on ``device``: camera geometry (pixel coordinates,
    depths, poses) must not run in bf16/fp16."""
    device_type = torch.device(device).type
    return torch.autocast(device_type=device_type, enabled=False)


def cell_centers(h: int, w: int, width: int, height: int, *, device=None,
                 dtype=torch.float32) -> Tensor:
    """``[h, w, 2]`` pixel coordinates ``(u, v)`` of the centres of an ``h × w`` grid of cells."""
    u = (torch.arange(w, device=device, dtype=dtype) + 0.5) * (width / w)
    v = (torch.arange(h, device=device, dtype=dtype) + 0.5) * (height / h)
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    return torch.stack([uu, vv], dim=-1)


def unproject_dirs(K: Tensor, uv: Tensor) -> Tensor:
    """Camera-frame ray directions with ``z = 1``: ``K⁻¹ [u, v, 1]``.

    Args:
        K: ``[..., 3, 3]`` intrinsics (pinhole, no skew).
        uv: ``[..., h, w, 2]`` pixel coordinates (broadcast against ``K``'s batch).
    Returns:
        ``[..., h, w, 3]``.
    """
    fx = K[..., 0, 0][..., None, None]
    fy = K[..., 1, 1][..., None, None]
    cx = K[..., 0, 2][..., None, None]
    cy = K[..., 1, 2][..., None, None]
    x = (uv[..., 0] - cx) / fx
    y = (uv[..., 1] - cy) / fy
    return torch.stack([x, y, torch.ones_like(x)], dim=-1)


def rotate(c2w: Tensor, v: Tensor) -> Tensor:
    """Rotate camera-frame vectors ``[..., h, w, 3]`` into the world by ``c2w [..., 4, 4]``."""
    with no_autocast(v.device):
        r = c2w[..., None, None, :3, :3].to(v.dtype)
        return (r @ v[..., None]).squeeze(-1)


def plucker(dirs_world: Tensor, origins: Tensor, center: Tensor, scale: float) -> Tensor:
    """Plücker ray coordinates ``[d̂, (o − c) × d̂ / scale]`` → ``[..., 6]``.

    Args:
        dirs_world: ``[..., h, w, 3]`` ray directions (any length).
        origins: ``[..., 3]`` ray origins (camera centres), broadcast over ``h, w``.
        center: ``[..., 3]`` reference point (the scene's mean camera centre) so the moments do
            not depend on where the clip's world origin happens to be.
        scale: metres that make a moment of order one.
    """
    d = dirs_world / dirs_world.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    o = (origins - center)[..., None, None, :].expand_as(d)
    return torch.cat([d, torch.cross(o, d, dim=-1) / scale], dim=-1)


def matrix_to_quat(r: Tensor) -> Tensor:
    """Batched rotation matrices ``[..., 3, 3]`` → w, x, y, z unit quaternions ``[..., 4]``.

    Branch-free Shepperd: compute all four candidate quaternions and keep, per matrix, the one
    whose largest component makes the division best conditioned.
    """
    m00, m01, m02 = r[..., 0, 0], r[..., 0, 1], r[..., 0, 2]
    m10, m11, m12 = r[..., 1, 0], r[..., 1, 1], r[..., 1, 2]
    m20, m21, m22 = r[..., 2, 0], r[..., 2, 1], r[..., 2, 2]
    q_abs = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22,
                         1 - m00 + m11 - m22, 1 - m00 - m11 + m22], dim=-1)
    q_abs = q_abs.clamp_min(0).sqrt()
    cands = torch.stack([
        torch.stack([q_abs[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01], -1),
        torch.stack([m21 - m12, q_abs[..., 1] ** 2, m10 + m01, m02 + m20], -1),
        torch.stack([m02 - m20, m10 + m01, q_abs[..., 2] ** 2, m12 + m21], -1),
        torch.stack([m10 - m01, m20 + m02, m21 + m12, q_abs[..., 3] ** 2], -1),
    ], dim=-2)  # [..., 4, 4]
    cands = cands / (2.0 * q_abs[..., None].clamp_min(0.1))
    best = q_abs.argmax(dim=-1)
    q = torch.gather(cands, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)

