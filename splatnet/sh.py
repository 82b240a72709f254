"""Real spherical harmonics in the 3DGS convention (same order and signs as the reference 3DGS
and gsplat code): the pure-PyTorch definition that the C++/CUDA headers mirror.

Colour of a Gaussian seen along unit direction ``d`` (camera centre → mean):
``rgb = max(0, 0.5 + Σ_k Y_k(d) · sh[k])``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792,
         0.5462742152960396)
SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
         -0.4570457994644658, 1.445305721320277, -0.5900435899266435)


def num_sh_bases(degree: int) -> int:
    return (degree + 1) ** 2


def sh_degree_from_bases(k: int) -> int:
    """Degree whose basis count is ``k``; raises ValueError when ``k`` is not 1, 4, 9 or 16."""
    degree = math.isqrt(k) - 1
    if k not in (1, 4, 9, 16) or num_sh_bases(degree) != k:
        raise ValueError(f"{k} SH coefficients per channel is not a degree 0-3 set (1, 4, 9 or 16)")
    return degree


def eval_sh_basis(degree: int, dirs: Tensor) -> Tensor:
    """SH basis ``Y_k(d)`` for unit directions ``dirs [..., 3]`` → ``[..., (degree+1)²]``."""
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, SH_C0)]
    if degree >= 1:
        out += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        out += [
            SH_C2[0] * xy,
            SH_C2[1] * yz,
            SH_C2[2] * (2.0 * zz - xx - yy),
            SH_C2[3] * xz,
            SH_C2[4] * (xx - yy),
        ]
    if degree >= 3:
        out += [
            SH_C3[0] * y * (3 * xx - yy),
            SH_C3[1] * xy * z,
            SH_C3[2] * y * (4 * zz - xx - yy),
            SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
            SH_C3[4] * x * (4 * zz - xx - yy),
            SH_C3[5] * z * (xx - yy),
            SH_C3[6] * x * (xx - 3 * yy),
        ]
    if degree > 3:
        raise ValueError(f"SH degree {degree} is not supported (0-3)")
    return torch.stack(out, dim=-1)


def eval_sh(sh: Tensor, dirs: Tensor, degree: int | None = None) -> Tensor:
    """Colour ``max(0, 0.5 + Σ Y_k(d) sh[k])`` for ``sh [..., K, 3]`` and ``dirs [..., 3]``.

    ``dirs`` need not be unit length. ``degree`` (≤ the degree of ``sh``) limits the bands used.
    """
    k = sh.shape[-2]
    if degree is None:
        degree = sh_degree_from_bases(k)
    kk = num_sh_bases(degree)
    if kk > k:
        raise ValueError(f"sh_degree {degree} needs {kk} coefficients, the Gaussians have {k}")
    d = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    basis = eval_sh_basis(degree, d)  # [..., kk]
    rgb = (basis.unsqueeze(-1) * sh[..., :kk, :]).sum(-2) + 0.5
    return rgb.clamp_min(0.0)


def rgb_to_sh(rgb: Tensor) -> Tensor:
    """DC coefficient that renders as ``rgb`` from every direction."""
    return (rgb - 0.5) / SH_C0


def sh_to_rgb(sh_dc: Tensor) -> Tensor:
    return sh_dc * SH_C0 + 0.5


def sh_rotation_matrices(rotation: Tensor, degree: int) -> list[Tensor]:
    """Per-band matrices ``D_l`` with ``Y_l(R d) = D_l Y_l(d)`` for a 3×3 rotation ``R``.

    Rotating a scene by ``R`` maps a band's coefficients ``c_l [2l+1, 3]`` to ``D_l @ c_l``. The
    matrices are fitted in float64 from the basis itself at well-spread directions (exact up to
    rounding, since each band is closed under rotation), so they agree with :func:`eval_sh_basis`
    by construction, signs and order included.
    """
    r = rotation.to(torch.float64)
    gen = torch.Generator().manual_seed(0)
    d = torch.randn(64, 3, generator=gen, dtype=torch.float64)
    d = d / d.norm(dim=-1, keepdim=True)
    d = d.to(r.device)
    y = eval_sh_basis(degree, d)  # [64, K]
    y_rot = eval_sh_basis(degree, d @ r.T)  # [64, K]
    mats = []
    for band in range(1, degree + 1):
        s = slice(band * band, (band + 1) * (band + 1))
        # y_rot[:, s] = y[:, s] @ D_l^T  →  least squares for D_l^T.
        dt = torch.linalg.lstsq(y[:, s], y_rot[:, s]).solution
        mats.append(dt.T)
    return mats
