"""The ``gsplat`` backend: ``gsplat.rasterization`` behind splatnet's conventions (GPU only).

Same inputs and conventions as the other backends: OpenCV world→camera matrices, pixel
intrinsics, w,x,y,z quaternions, activated scales/opacities, SH colour ``max(0, 0.5 + Σ Y sh)``
along camera centre → mean, 0.3 px dilation, 16 px tiles, accumulated depth normalised by
:func:`splatnet.render` (so "expected depth" is computed the same way for every backend).

Known deviation, inherent to gsplat's CUDA kernels: α is clamped at 0.999 (docs/conventions.md and
our kernels: 0.99) and a pixel stops when ``T ≤ 1e-4`` (ours: ``T < 1e-4``); gsplat 1.5 also uses
an opacity-aware bounding box, which changes no pixel. Compare backends on Gaussians whose
α stays below 0.99.
"""

from __future__ import annotations

import torch
from torch import Tensor

from splatnet.errors import BackendUnavailableError


def _gsplat():
    from splatnet._optional import require

    try:
        gsplat = require("gsplat", "backend 'gsplat'", extra="gsplat")
        spherical_harmonics = require("gsplat.cuda._wrapper", "backend 'gsplat'",
                                      extra="gsplat").spherical_harmonics
    except ImportError as exc:
        raise BackendUnavailableError(
            f"{exc} (it needs a CUDA build of torch), or use backend='cuda' / 'cpu'"
        ) from exc
    if not torch.cuda.is_available():
        raise BackendUnavailableError(
            "backend 'gsplat': gsplat's rasterizer is CUDA-only and torch sees no CUDA device; use "
            "backend='cpu'"
        )
    return gsplat, spherical_harmonics


def render_gsplat(
    means: Tensor,  # [..., N, 3]
    quats: Tensor,  # [..., N, 4]
    scales: Tensor,  # [..., N, 3]
    opacities: Tensor,  # [..., N]
    sh: Tensor,  # [..., N, K, 3]
    viewmats: Tensor,  # [..., C, 4, 4]
    Ks: Tensor,  # [..., C, 3, 3]
    width: int,
    height: int,
    sh_degree: int,
    near: float,
    far: float,
    antialiased: bool,
    features: Tensor | None,  # [..., N, D]
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Render with gsplat → ``(image [...,C,H,W,3+1+D], alpha [...,C,H,W,1], means2d [...,C,N,2],
    radii [...,C,N,2])``; image channels are colour, accumulated depth ``Σ z α T``, features.
    ``means2d`` is gsplat's own projected-means tensor (call ``retain_grad`` on it)."""
    gsplat, spherical_harmonics = _gsplat()
    lead = means.shape[:-2]
    N = means.shape[-2]
    C = viewmats.shape[-3]
    # SH colour per camera, evaluated by gsplat's own kernel, so features can ride along.
    centres = torch.linalg.inv(viewmats)[..., :3, 3]  # [..., C, 3]
    dirs = means[..., None, :, :] - centres[..., :, None, :]  # [..., C, N, 3]
    k = (sh_degree + 1) ** 2
    coeffs = sh[..., None, :, :k, :].expand(*lead, C, N, k, 3)
    colors = torch.clamp_min(spherical_harmonics(sh_degree, dirs, coeffs) + 0.5, 0.0)
    if features is not None:
        feats = features[..., None, :, :].expand(*lead, C, N, features.shape[-1])
        colors = torch.cat([colors, feats], dim=-1)
    image, alpha, meta = gsplat.rasterization(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height,
        near_plane=near, far_plane=far, eps2d=0.3, sh_degree=None, packed=False, tile_size=16,
        render_mode="RGB+D", rasterize_mode="antialiased" if antialiased else "classic",
    )
    # gsplat appends the depth channel last: reorder to [rgb, depth, features].
    image = torch.cat([image[..., :3], image[..., -1:], image[..., 3:-1]], dim=-1)
    means2d = meta["means2d"]
    radii = meta["radii"]
    if radii.dim() == means2d.dim() - 1:  # older gsplat: one radius per Gaussian
        radii = radii[..., None].expand(*radii.shape, 2)
    return image, alpha, means2d, radii.to(torch.int32)
