"""The ``torch`` backend: the renderer written out in plain PyTorch, as its readable specification.

Same two stages and signatures as the compiled ops (see ``splatnet/rendering/_ops.py``):

1. :func:`project_reference` — EWA projection of 3D Gaussians into each camera, culling, and the
   view-dependent SH colour.
2. :func:`rasterize_reference` — front-to-back alpha blending of the projected Gaussians, per
   16×16 tile, in camera-depth order.

Everything is dtype-generic (float64 for gradient checks) and differentiated by autograd. The
semantics are exactly ``docs/conventions.md`` ("classic" 3DGS, optional Mip-Splatting compensation);
the constants (``splatnet/_constants.py``) are the Python twins of ``csrc/include/splatnet/constants.h``.

No NaN, forward or backward, for a Gaussian at the near plane or the camera centre: every value
that could divide by zero there is replaced by a harmless one *before* the division (``where``
on the inputs, not on the outputs, so no ``inf · 0`` reaches autograd either).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from splatnet._constants import (  # noqa: F401 - re-exported: the reference names its constants
    ALPHA_MAX,
    ALPHA_MIN,
    DEPTH_EPS,
    EPS2D,
    FOV_CLAMP,
    T_MIN,
    TILE_SIZE,
)
from splatnet.sh import SH_C0, eval_sh_basis, num_sh_bases

# ----------------------------------------------------------------------------- constants

# exp(−σ) for σ beyond this is < 1e-26 · 255: such α are skipped whatever the cap, so σ is
# clamped there before exp (denormal floats make exp ~100× slower on x86).
_SIGMA_CAP = 60.0
# Pixel × Gaussian pairs evaluated at once inside a tile (bounds the memory of one step).
_PAIRS_PER_STEP = 1 << 20
# Beyond this many pixel × Gaussian pairs in a whole image, tiles are recomputed in backward
# instead of keeping their intermediates (torch.utils.checkpoint).
_PAIRS_BEFORE_CHECKPOINT = 1 << 24


# ----------------------------------------------------------------------------- stage 1
def quat_scale_to_covariance(quats: Tensor, scales: Tensor) -> Tensor:
    """World covariance ``Σ = R S Sᵀ Rᵀ`` ``[..., 3, 3]`` from w,x,y,z quats and scales."""
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    rot = torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*quats.shape[:-1], 3, 3)
    m = rot * scales[..., None, :]  # R S
    return m @ m.transpose(-1, -2)


def project_reference(
    means: Tensor,  # [B, N, 3]
    quats: Tensor,  # [B, N, 4] w, x, y, z (unnormalised)
    scales: Tensor,  # [B, N, 3]
    opacities: Tensor,  # [B, N]
    sh: Tensor,  # [B, N, K, 3]
    viewmats: Tensor,  # [B, C, 4, 4] world → camera (OpenCV)
    Ks: Tensor,  # [B, C, 3, 3] pixels
    width: int,
    height: int,
    sh_degree: int,
    near: float = 0.01,
    far: float = 1e10,
    antialiased: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Project Gaussians into cameras.

    Returns ``(means2d [B,C,N,2], conics [B,C,N,3], depths [B,C,N], radii [B,C,N,2] int32,
    opac [B,C,N], colors [B,C,N,3])``: pixel-space means, the upper triangle ``(a, b, c)`` of the
    inverse dilated 2D covariance, camera z, the integer bounding-box half sizes (``(0, 0)`` =
    culled), the opacity (times the Mip-Splatting compensation when ``antialiased``) and the SH
    colour ``max(0, 0.5 + Σ Y_k(d) sh_k)`` along ``d`` = camera centre → mean.

    Culled (radii 0): ``z ≤ near``, ``z ≥ far``, a degenerate 2D covariance, or a bounding box
    entirely off the image. Their outputs are zero except ``depths`` (as in the compiled ops).
    """
    B, N = means.shape[:2]
    C = viewmats.shape[1]
    rot_v = viewmats[:, :, None, :3, :3]  # [B, C, 1, 3, 3]
    t_v = viewmats[:, :, None, :3, 3]  # [B, C, 1, 3]

    # World → camera.
    p_cam = (rot_v @ means[:, None, :, :, None]).squeeze(-1) + t_v  # [B, C, N, 3]
    cov_world = quat_scale_to_covariance(quats, scales)[:, None]  # [B, 1, N, 3, 3]
    cov_cam = rot_v @ cov_world @ rot_v.transpose(-1, -2)  # [B, C, N, 3, 3]

    x, y, z = p_cam.unbind(-1)  # [B, C, N]
    in_depth = (z > near) & (z < far)
    z_safe = torch.where(in_depth, z, torch.ones_like(z))  # no division by ~0 for culled ones

    fx, fy = Ks[:, :, None, 0, 0], Ks[:, :, None, 1, 1]  # [B, C, 1]
    cx, cy = Ks[:, :, None, 0, 2], Ks[:, :, None, 1, 2]
    means2d = torch.stack([fx * x / z_safe + cx, fy * y / z_safe + cy], dim=-1)  # [B, C, N, 2]

    # Jacobian of the pinhole projection at the mean, with x/z, y/z clamped to 1.3× the half
    # field of view (on each side of the principal point), as in 3DGS and gsplat: far off-screen
    # Gaussians would otherwise get absurdly stretched footprints.
    half_tan_x, half_tan_y = 0.5 * width / fx, 0.5 * height / fy
    extra = FOV_CLAMP - 1.0
    lim_x_pos = (width - cx) / fx + extra * half_tan_x
    lim_x_neg = cx / fx + extra * half_tan_x
    lim_y_pos = (height - cy) / fy + extra * half_tan_y
    lim_y_neg = cy / fy + extra * half_tan_y
    tx = z_safe * torch.clamp(x / z_safe, -lim_x_neg, lim_x_pos)
    ty = z_safe * torch.clamp(y / z_safe, -lim_y_neg, lim_y_pos)
    zero = torch.zeros_like(z_safe)
    jac = torch.stack(
        [fx / z_safe, zero, -fx * tx / z_safe**2, zero, fy / z_safe, -fy * ty / z_safe**2], dim=-1
    ).reshape(B, C, N, 2, 3)
    cov2d = jac @ cov_cam @ jac.transpose(-1, -2)  # [B, C, N, 2, 2]

    s00, s01, s10, s11 = cov2d[..., 0, 0], cov2d[..., 0, 1], cov2d[..., 1, 0], cov2d[..., 1, 1]
    det_orig = s00 * s11 - s01 * s10
    s00, s11 = s00 + EPS2D, s11 + EPS2D  # dilation: every splat covers at least ~a pixel
    s01 = 0.5 * (s01 + s10)
    det = s00 * s11 - s01 * s01
    valid = in_depth & (det > 0)
    det_safe = torch.where(valid, det, torch.ones_like(det))
    conics = torch.stack([s11 / det_safe, -s01 / det_safe, s00 / det_safe], dim=-1)

    opac = opacities[:, None, :].expand(B, C, N)
    if antialiased:
        # Mip-Splatting: keep the integrated energy of the undilated footprint.
        ratio = det_orig / det_safe
        positive = valid & (ratio > 0)
        comp = torch.sqrt(torch.where(positive, ratio, torch.ones_like(ratio)))
        opac = opac * torch.where(positive, comp, torch.zeros_like(comp))

    # Integer bounding box (not differentiable) of the ellipse where α falls to ALPHA_MIN:
    # dᵀ Σ'⁻¹ d = 2 ln(o / ALPHA_MIN), whose half sides are k·sqrt(Σ'_xx), k·sqrt(Σ'_yy) with
    # k = sqrt(2 ln(o / ALPHA_MIN)) ≤ 3.33 for o ≤ 1 (gsplat's opacity-aware box). Outside it
    # α < ALPHA_MIN, so binning by it changes no pixel. A Gaussian with o ≤ ALPHA_MIN is never
    # blended and is culled, as are boxes entirely off the image.
    with torch.no_grad():
        log_ratio = torch.log(opac.clamp_min(1e-30) / ALPHA_MIN)
        blendable = log_ratio > 0
        k = torch.sqrt(2.0 * log_ratio.clamp_min(0))
        rx = torch.ceil(k * torch.sqrt(s00.clamp_min(0)))
        ry = torch.ceil(k * torch.sqrt(s11.clamp_min(0)))
        mx, my = means2d.unbind(-1)
        on_image = (mx + rx > 0) & (mx - rx < width) & (my + ry > 0) & (my - ry < height)
        keep = valid & blendable & on_image & (rx > 0) & (ry > 0)
        radii = (torch.stack([rx, ry], dim=-1) * keep[..., None]).to(torch.int32)

    # View-dependent colour along camera centre → mean (world frame).
    centres = -(viewmats[:, :, :3, :3].transpose(-1, -2) @ viewmats[:, :, :3, 3:]).squeeze(-1)
    dirs = means[:, None, :, :] - centres[:, :, None, :]  # [B, C, N, 3]
    colors = _sh_colors(sh, dirs, sh_degree)
    k2 = keep[..., None]
    nil = torch.zeros((), dtype=means.dtype, device=means.device)
    return (torch.where(k2, means2d, nil), torch.where(k2, conics, nil), z, radii,
            torch.where(keep, opac, nil), torch.where(k2, colors, nil))


def _sh_colors(sh: Tensor, dirs: Tensor, degree: int) -> Tensor:
    """``max(0, 0.5 + Σ Y_k(d̂) sh_k)`` for ``sh [B, N, K, 3]``, ``dirs [B, C, N, 3]``."""
    k = num_sh_bases(degree)
    if degree == 0:
        rgb = (SH_C0 * sh[:, None, :, 0, :]).expand(*dirs.shape[:-1], 3)
    else:
        sq = (dirs * dirs).sum(-1, keepdim=True)
        nonzero = sq > 0  # a mean at the camera centre (culled anyway) gets d̂ = 0
        unit = dirs / torch.sqrt(torch.where(nonzero, sq, torch.ones_like(sq)))
        basis = eval_sh_basis(degree, unit)  # [B, C, N, k]
        rgb = (basis[..., None] * sh[:, None, :, :k, :]).sum(-2)
    return (rgb + 0.5).clamp_min(0.0)


# ----------------------------------------------------------------------------- stage 2
def rasterize_reference(
    means2d: Tensor,  # [B, C, N, 2]
    conics: Tensor,  # [B, C, N, 3]
    values: Tensor,  # [B, C, N, Ch]
    opac: Tensor,  # [B, C, N]
    depths: Tensor,  # [B, C, N]
    radii: Tensor,  # [B, C, N, 2] int
    width: int,
    height: int,
    tile_size: int = TILE_SIZE,
) -> tuple[Tensor, Tensor]:
    """Blend projected Gaussians front to back: ``(image [B,C,H,W,Ch], alpha [B,C,H,W,1])``.

    For each pixel centre ``p = (x + 0.5, y + 0.5)`` and the Gaussians sorted by depth:
    ``α_i = min(0.99, o_i exp(−½ dᵀ Σ'⁻¹ d))`` with ``d = p − mean2d``; skip ``α_i < 1/255``;
    if ``T (1 − α_i) < 1e-4`` stop (Gaussian i is not blended); else add ``α_i T`` of its
    values and set ``T ← T (1 − α_i)``. ``image = Σ values_i α_i T_i``, ``alpha = Σ α_i T_i``.

    Gaussians with ``radii == 0`` take no part. Work is organised in tiles of ``tile_size``
    pixels, each blending only the Gaussians whose bounding box reaches it; this is exact (the
    bounding box encloses every pixel where α ≥ 1/255).
    """
    B, C, N = opac.shape
    ch = values.shape[-1]
    images, alphas = [], []
    for b in range(B):
        for c in range(C):
            img, alpha = _rasterize_image(
                means2d[b, c], conics[b, c], values[b, c], opac[b, c], depths[b, c], radii[b, c],
                width, height, tile_size,
            )
            images.append(img)
            alphas.append(alpha)
    if not images:
        dtype, dev = values.dtype, values.device
        return (torch.zeros(B, C, height, width, ch, dtype=dtype, device=dev),
                torch.zeros(B, C, height, width, 1, dtype=dtype, device=dev))
    image = torch.stack(images).reshape(B, C, height, width, ch)
    alpha = torch.stack(alphas).reshape(B, C, height, width, 1)
    return image, alpha


def _tile_lists(means2d: Tensor, radii: Tensor, depths: Tensor, tiles_x: int, tiles_y: int,
                tile_size: int) -> tuple[Tensor, Tensor]:
    """Per-tile Gaussian lists in depth order: ``(flat ids [M], tile offsets [T + 1])``."""
    with torch.no_grad():
        visible = (radii > 0).all(-1)
        ids = torch.nonzero(visible).squeeze(-1)
        # Depth order, ties broken by index (a stable sort over index order).
        order = torch.sort(depths[ids], stable=True).indices
        ids = ids[order]
        m = means2d[ids].to(torch.float64)
        r = radii[ids].to(torch.float64)
        x0 = torch.floor((m[:, 0] - r[:, 0]) / tile_size).clamp(0, tiles_x).long()
        x1 = torch.ceil((m[:, 0] + r[:, 0]) / tile_size).clamp(0, tiles_x).long()
        y0 = torch.floor((m[:, 1] - r[:, 1]) / tile_size).clamp(0, tiles_y).long()
        y1 = torch.ceil((m[:, 1] + r[:, 1]) / tile_size).clamp(0, tiles_y).long()
        nx, ny = x1 - x0, y1 - y0
        count = nx * ny
        rank = torch.repeat_interleave(torch.arange(len(ids), device=ids.device), count)
        start = torch.cumsum(count, 0) - count
        local = torch.arange(int(count.sum()), device=ids.device) - start[rank]
        tx = x0[rank] + local % nx[rank]
        ty = y0[rank] + torch.div(local, nx[rank], rounding_mode="floor")
        tile = ty * tiles_x + tx
        # Sorting by (tile, depth rank) gives each tile's list in depth order.
        key = tile * max(len(ids), 1) + rank
        key_order = torch.sort(key).indices
        flat = ids[rank[key_order]]
        per_tile = torch.bincount(tile, minlength=tiles_x * tiles_y)
        offsets = torch.cat([per_tile.new_zeros(1), torch.cumsum(per_tile, 0)])
    return flat, offsets


def _rasterize_image(means2d: Tensor, conics: Tensor, values: Tensor, opac: Tensor,
                     depths: Tensor, radii: Tensor, width: int, height: int,
                     tile_size: int) -> tuple[Tensor, Tensor]:
    """One camera: ``[H·W, Ch]`` colours and ``[H·W, 1]`` alpha (flattened row-major).

    Tiles are blended a batch at a time: tiles with similar list lengths are stacked and their
    lists padded with a transparent dummy Gaussian (opacity 0: always skipped), which changes
    no pixel and saves the Python overhead of one step per tile.
    """
    n, ch = values.shape
    dtype, dev = values.dtype, values.device
    tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
    flat, offsets = _tile_lists(means2d, radii, depths, tiles_x, tiles_y, tile_size)
    counts = offsets[1:] - offsets[:-1]
    blended = torch.zeros(height * width, ch + 1, dtype=dtype, device=dev)
    if not bool((counts > 0).any()):
        return blended[:, :ch], blended[:, ch:]
    px_per_tile = tile_size * tile_size
    use_checkpoint = (torch.is_grad_enabled()
                      and int(counts.sum()) * px_per_tile > _PAIRS_BEFORE_CHECKPOINT)

    # Index n is the dummy Gaussian (appended as a row of zeros: opacity 0).
    pad = lambda t: torch.cat([t, t.new_zeros(1, *t.shape[1:])])  # noqa: E731
    m_ext, c_ext, o_ext, v_ext = pad(means2d), pad(conics), pad(opac), pad(values)

    # Pixel slots of every tile (slots beyond the image edge are computed and dropped).
    ar = torch.arange(tile_size, device=dev)
    sy, sx = torch.meshgrid(ar, ar, indexing="ij")
    slot_x, slot_y = sx.reshape(-1), sy.reshape(-1)  # [P]

    tiles = torch.nonzero(counts > 0).squeeze(-1)
    tiles = tiles[torch.argsort(counts[tiles], stable=True)]  # similar lengths side by side
    tile_counts = counts[tiles].tolist()
    pieces, pixel_ids = [], []
    i = 0
    while i < len(tiles):
        # The longest list of a batch is its last; grow the batch while it fits the budget.
        j = i + 1
        while j < len(tiles) and (j + 1 - i) * tile_counts[j] * px_per_tile <= _PAIRS_PER_STEP:
            j += 1
        batch, length = tiles[i:j], tile_counts[j - 1]
        rank = torch.arange(length, device=dev)
        pos = offsets[batch][:, None] + rank  # [T, L] positions in the flat list
        ids = torch.where(rank < counts[batch][:, None], flat[pos.clamp_max(len(flat) - 1)], n)
        ty, tx = batch // tiles_x, batch % tiles_x
        gx = tx[:, None] * tile_size + slot_x  # [T, P]
        gy = ty[:, None] * tile_size + slot_y
        centres = torch.stack([gx, gy], dim=-1).to(dtype) + 0.5  # [T, P, 2]
        args = (centres, m_ext[ids], c_ext[ids], o_ext[ids], v_ext[ids])
        if use_checkpoint:
            out = checkpoint(_blend_pixels, *args, use_reentrant=False)
        else:
            out = _blend_pixels(*args)
        inside = (gx < width) & (gy < height)
        pieces.append(out[inside])
        pixel_ids.append((gy * width + gx)[inside])
        i = j

    blended = blended.index_copy(0, torch.cat(pixel_ids), torch.cat(pieces))
    return blended[:, :ch], blended[:, ch:]


def _blend_pixels(centres: Tensor, means2d: Tensor, conics: Tensor, opac: Tensor,
                  values: Tensor) -> Tensor:
    """Blend depth-ordered Gaussians at pixel centres, for a batch of T tiles.

    ``centres [T, P, 2]``; per tile ``L`` Gaussians front to back: ``means2d [T, L, 2]``,
    ``conics [T, L, 3]``, ``opac [T, L]``, ``values [T, L, Ch]`` → ``[T, P, Ch + 1]`` (the last
    channel is the accumulated alpha). Long lists are taken in steps of bounded size; the
    transmittance and the stop carried between steps make this one sequential loop.
    """
    nt, P = centres.shape[:2]
    L, ch = values.shape[1:]
    step = max(1, _PAIRS_PER_STEP // max(nt * P, 1))
    T = values.new_ones(nt, P)  # transmittance before the step
    stopped = torch.zeros(nt, P, dtype=torch.bool, device=values.device)
    acc = values.new_zeros(nt, P, ch + 1)
    for s in range(0, L, step):
        e = min(L, s + step)
        d = centres[:, :, None, :] - means2d[:, None, s:e, :]  # [T, P, g, 2]
        a, b, c = conics[:, None, s:e, :].unbind(-1)  # [T, 1, g]
        dx, dy = d.unbind(-1)
        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy  # ½ dᵀ Σ'⁻¹ d
        # σ is capped where α ≪ 1/255 anyway (keeps exp out of slow denormal arithmetic).
        alpha = torch.clamp_max(opac[:, None, s:e] * torch.exp(-sigma.clamp_max(_SIGMA_CAP)),
                                ALPHA_MAX)
        alpha = torch.where(alpha >= ALPHA_MIN, alpha, torch.zeros_like(alpha))
        # T after each Gaussian if it were blended; from the first one that would take T below
        # T_MIN on, nothing more is blended at that pixel (T only decreases, so the mask is a
        # suffix of the list).
        t_after = T[..., None] * torch.cumprod(1.0 - alpha, dim=-1)
        stop = (t_after < T_MIN) | stopped[..., None]
        alpha = torch.where(stop, torch.zeros_like(alpha), alpha)
        one_minus = 1.0 - alpha
        t_excl = T[..., None] * torch.cumprod(
            torch.cat([torch.ones_like(one_minus[..., :1]), one_minus[..., :-1]], dim=-1), dim=-1
        )
        weights = alpha * t_excl  # [T, P, g]
        acc = acc + torch.cat([weights @ values[:, s:e], weights.sum(-1, keepdim=True)], -1)
        T = t_excl[..., -1] * one_minus[..., -1]
        stopped = stop[..., -1]
        if bool(stopped.all()):  # every pixel has stopped
            break
    return acc
