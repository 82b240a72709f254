"""Losses for feed-forward splatting, usable from any training loop.

Images are channel-first ``[..., 3, H, W]`` in [0, 1] (the network's input layout); maps such as
depth and opacity are ``[..., 1, h, w]``. Every loss returns a scalar mean.

The one-liner a driving model needs::

    loss = splatnet.losses.render_and_compare(gaussians, target_cameras, target_images)
"""

from __future__ import annotations

from dataclasses import dataclass

import kornia
import torch
import torch.nn.functional as F
from torch import Tensor

from splatnet.cameras import Cameras, sparse_depth
from splatnet.errors import ValidationError
from splatnet.gaussians import Gaussians
from splatnet.metrics import psnr  # noqa: F401 - the metric, re-exported for convenience

__all__ = [
    "apply_colour",
    "RenderCompare",
    "edge_aware_smoothness",
    "inverse_depth_l1",
    "lidar_depth_loss",
    "opacity_loss",
    "photometric_loss",
    "psnr",
    "render_and_compare",
    "scale_loss",
    "sky_opacity_loss",
    "sky_probability_loss",
]


def _masked_mean(x: Tensor, mask: Tensor | None) -> Tensor:
    if mask is None:
        return x.mean()
    m = mask.to(x.dtype).expand_as(x)
    return (x * m).sum() / m.sum().clamp_min(1.0)


def photometric_loss(pred: Tensor, target: Tensor, *, mask: Tensor | None = None,
                     ssim_weight: float = 0.2, window_size: int = 11) -> Tensor:
    """``(1 − w) · L1 + w · (1 − SSIM)`` (w = 0.2: the 3DGS / MVSplat photometric loss).

    Args:
        pred, target: ``[..., 3, H, W]`` images in [0, 1].
        mask: optional ``[..., 1, H, W]`` (or broadcastable) weights; the loss is averaged over
            the masked pixels.
        ssim_weight: weight of the SSIM term.
        window_size: Gaussian SSIM window (odd; shrunk for images smaller than it).
    """
    if pred.shape != target.shape or pred.dim() < 3:
        raise ValidationError(f"photometric_loss: pred {tuple(pred.shape)} and target "
                              f"{tuple(target.shape)} must both be [..., C, H, W]")
    l1 = (pred - target).abs().mean(dim=-3, keepdim=True)  # [..., 1, H, W]
    if ssim_weight == 0:
        return _masked_mean(l1, mask)
    h, w = pred.shape[-2:]
    win = min(window_size, h - (1 - h % 2), w - (1 - w % 2))
    win = max(win, 1)
    p = pred.reshape(-1, *pred.shape[-3:])
    t = target.reshape(-1, *target.shape[-3:])
    ssim = kornia.metrics.ssim(p, t, win, max_val=1.0).mean(dim=1, keepdim=True)
    ssim = ssim.reshape(*pred.shape[:-3], 1, h, w)
    per_pixel = (1.0 - ssim_weight) * l1 + ssim_weight * (1.0 - ssim)
    return _masked_mean(per_pixel, mask)


def inverse_depth_l1(pred: Tensor, gt: Tensor, near: float, pool: bool = True) -> Tensor:
    """Mean ``|near/pred − near/gt|`` where ``gt`` > 0.

    ``pred`` is ``[B, V, 1, h, w]``; ``gt`` ``[B, V, 1, H, W]`` sparse (0 = unknown). With
    ``pool``, ``gt`` is reduced to ``h × w`` cells keeping each cell's nearest point (max of the
    inverse depth), so a coarse prediction is compared with the surface a cell's centre sees first.
    """
    b, v = gt.shape[:2]
    H, W = gt.shape[-2:]
    h, w = pred.shape[-2:]
    inv = torch.where(gt > 0, near / gt.clamp_min(1e-6), torch.zeros_like(gt)).reshape(b * v, 1, H, W)
    if pool and (h, w) != (H, W):
        inv = F.adaptive_max_pool2d(inv, (h, w))
    inv = inv.reshape(b, v, 1, h, w)
    mask = (inv > 0).to(pred.dtype)
    err = (near / pred.float().clamp_min(1e-6) - inv).abs() * mask
    return err.sum() / mask.sum().clamp_min(1)


def lidar_depth_loss(depth: Tensor, cameras: Cameras, points: list[Tensor | None], *,
                     near: float = 1e-3, far: float | None = None) -> Tensor:
    """L1 between predicted and LiDAR inverse depth on the cells that LiDAR hits.

    Each scene's world points are splatted into the depth map's grid (nearest point per cell,
    camera z) and compared as ``|1/z_pred − 1/z_lidar|``.

    Args:
        depth: ``[B, V, 1, h, w]`` predicted camera depth (e.g. ``SplatNetOutput.depth``).
        cameras: batch ``[B]``, V cameras at the image size (the grid's cells are
            ``H/h × W/w`` pixels).
        points: B world point clouds ``[P, 3]`` (None for scenes without LiDAR).
        near, far: ignore LiDAR returns outside this camera-depth range.
    Returns:
        The mean over all hit cells (0, still differentiable, when there are none).
    """
    if depth.dim() != 5 or depth.shape[2] != 1:
        raise ValidationError(f"depth: expected [B, V, 1, h, w], got {tuple(depth.shape)}")
    b, v, _, h, w = depth.shape
    if cameras.batch_shape != (b,) or cameras.num_cameras != v:
        raise ValidationError(f"cameras: expected batch ({b},) with {v} cameras, got "
                              f"{cameras.batch_shape} with {cameras.num_cameras}")
    if len(points) != b:
        raise ValidationError(f"points: expected {b} point clouds, got {len(points)}")
    K = cameras.K.to(depth.dtype)
    w2c = cameras.world_to_cam.to(depth.dtype)
    total = depth.sum() * 0.0
    count = 0
    for i, pts in enumerate(points):
        if pts is None or pts.shape[0] == 0:
            continue
        with torch.no_grad():
            z = sparse_depth(pts, K[i], w2c[i], (cameras.height, cameras.width), cells=(h, w),
                             near=near).to(depth.dtype)  # [V, h, w]
            hit = z > 0
            if far is not None:
                hit &= z < far
        n = int(hit.sum())
        if n == 0:
            continue
        pred = depth[i, :, 0][hit]
        total = total + (1.0 / pred.clamp_min(1e-6) - 1.0 / z[hit]).abs().sum()
        count += n
    return total / max(count, 1)


def opacity_loss(opacities: Tensor) -> Tensor:
    """Mean opacity: an L1 sparsity prior that lets unneeded Gaussians fade (then get pruned)."""
    return opacities.mean()


def scale_loss(scales: Tensor, *, max_scale: float | None = None,
               max_ratio: float | None = 10.0) -> Tensor:
    """Penalise oversized and needle-like Gaussians.

    ``mean(relu(max_axis − max_scale)) + mean(relu(max_axis / min_axis − max_ratio))`` with
    either term dropped when its bound is None. ``scales`` is ``[..., N, 3]`` (activated).
    """
    loss = scales.sum() * 0.0
    big = scales.amax(dim=-1)
    if max_scale is not None:
        loss = loss + F.relu(big - max_scale).mean()
    if max_ratio is not None:
        ratio = big / scales.amin(dim=-1).clamp_min(1e-12)
        loss = loss + F.relu(ratio - max_ratio).mean()
    return loss


def edge_aware_smoothness(inv_depth: Tensor, image: Tensor) -> Tensor:
    """Edge-aware smoothness of mean-normalised inverse depth (Monodepth2).

    ``mean(|∂x d*| e^{−|∂x I|}) + mean(|∂y d*| e^{−|∂y I|})`` with ``d* = d / mean(d)``.

    Args:
        inv_depth: ``[..., 1, h, w]``.
        image: ``[..., 3, H, W]`` (area-resized to ``h × w`` when sizes differ).
    """
    h, w = inv_depth.shape[-2:]
    if image.shape[-2:] != (h, w):
        flat = image.reshape(-1, *image.shape[-3:])
        image = F.interpolate(flat, size=(h, w), mode="area").reshape(*image.shape[:-2], h, w)
    d = inv_depth / inv_depth.mean(dim=(-2, -1), keepdim=True).clamp_min(1e-7)
    dx = (d[..., :, 1:] - d[..., :, :-1]).abs()
    dy = (d[..., 1:, :] - d[..., :-1, :]).abs()
    ix = (image[..., :, 1:] - image[..., :, :-1]).abs().mean(dim=-3, keepdim=True)
    iy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean(dim=-3, keepdim=True)
    loss = inv_depth.sum() * 0.0
    if w > 1:
        loss = loss + (dx * torch.exp(-ix)).mean()
    if h > 1:
        loss = loss + (dy * torch.exp(-iy)).mean()
    return loss


def sky_opacity_loss(alpha: Tensor, sky_mask: Tensor, *, mask: Tensor | None = None) -> Tensor:
    """``L1(alpha, 1 − sky)``: rendered opacity should be 0 on sky pixels and 1 elsewhere (STORM).

    Args:
        alpha: rendered opacity ``[..., H, W, 1]`` (``RenderOutput.alpha``) or ``[..., H, W]``.
        sky_mask: ``[..., H, W]`` bool or float in [0, 1] (1 = sky).
        mask: optional ``[..., H, W]`` pixels where the sky mask is known; the loss is averaged
            over them.
    """
    if alpha.shape[-1] == 1 and alpha.dim() == sky_mask.dim() + 1:
        alpha = alpha[..., 0]
    if alpha.shape != sky_mask.shape:
        raise ValidationError(f"sky_opacity_loss: alpha {tuple(alpha.shape)} and sky_mask "
                              f"{tuple(sky_mask.shape)} differ")
    return _masked_mean((alpha - (1.0 - sky_mask.to(alpha.dtype))).abs(), mask)


def sky_probability_loss(sky_prob: Tensor, sky_mask: Tensor) -> Tensor:
    """Binary cross-entropy of the head's sky probability against a sky mask.

    Args:
        sky_prob: ``[..., 1, h, w]`` in (0, 1).
        sky_mask: ``[..., H, W]`` (area-averaged to ``h × w``), 1 = sky.
    """
    h, w = sky_prob.shape[-2:]
    m = sky_mask.to(sky_prob.dtype)
    if m.shape[-2:] != (h, w):
        flat = m.reshape(-1, 1, *m.shape[-2:])
        m = F.interpolate(flat, size=(h, w), mode="area").reshape(*m.shape[:-2], h, w)
    m = m.unsqueeze(-3)
    p = sky_prob.clamp(1e-6, 1 - 1e-6)
    return F.binary_cross_entropy(p, m.expand_as(p))


@dataclass
class RenderCompare:
    """What ``render_and_compare(..., return_render=True)`` returns.

    Attributes:
        loss: the photometric loss (scalar).
        rgb: ``[..., C, 3, H, W]`` rendered images, sky/background composited.
        render: the :class:`splatnet.RenderOutput` (alpha, depth, means2d, …).
    """

    loss: Tensor
    rgb: Tensor
    render: object


def apply_colour(rgb: Tensor, matrices: Tensor) -> Tensor:
    """``rgb [..., C, 3, H, W]`` through per-camera colour matrices ``[..., C, 3, 4]``
    (``[M | b]``): ``M · rgb + b`` per pixel (see :mod:`splatnet.models.colour`)."""
    if (matrices.shape[-2:] != (3, 4) or matrices.shape[:-2] != rgb.shape[:-3]
            or rgb.dim() < 4 or rgb.shape[-3] != 3):
        raise ValidationError(f"colour matrices {list(matrices.shape)} do not fit images "
                              f"{list(rgb.shape)} (expected [..., C, 3, 4] for [..., C, 3, H, W])")
    m, bias = matrices[..., :3], matrices[..., 3]
    return torch.einsum("...ij,...jhw->...ihw", m, rgb) + bias[..., :, None, None]


def render_and_compare(gaussians: Gaussians, cameras: Cameras, images: Tensor, *,
                       sky=None, background: Tensor | None = None, mask: Tensor | None = None,
                       sh_degree: int | None = None, ssim_weight: float = 0.2,
                       backend: str = "auto", return_render: bool = False,
                       colour: Tensor | None = None):
    """Render ``gaussians`` into ``cameras`` and compare with ``images`` in one call.

    Args:
        gaussians: batch ``[...]`` (e.g. ``[B]``) Gaussians.
        cameras: the target cameras, same batch shape, C cameras.
        images: ``[..., C, 3, H, W]`` target images in [0, 1].
        sky: optional sky to composite behind the Gaussians with weight ``1 − alpha``: a
            :class:`~splatnet.models.sky.SkyBackground` (``SplatNetOutput.sky``) or a tensor
            broadcastable to ``[..., C, H, W, 3]``.
        background: optional constant colour broadcastable to ``[..., C, 3]`` (used when
            ``sky`` is None; default black).
        mask: optional ``[..., C, 1, H, W]`` pixel weights.
        sh_degree, backend: passed to :func:`splatnet.render`.
        return_render: also return the rendered images and the render output.
        colour: optional ``[..., C, 3, 4]`` per-camera colour matrices (``SplatNetOutput.colour
            .for_cameras(cameras)``) the composited render goes through before the comparison
            (:func:`apply_colour`).
    Returns:
        The scalar loss, or a :class:`RenderCompare` when ``return_render``.
    """
    from splatnet.rendering import render

    expect = cameras.batch_shape + (cameras.num_cameras, 3, cameras.height, cameras.width)
    if tuple(images.shape) != expect:
        raise ValidationError(f"images: expected {list(expect)} ([..., C, 3, H, W] matching the "
                              f"cameras), got {list(images.shape)}")
    bg = background if sky is None else None
    out = render(gaussians, cameras, sh_degree=sh_degree, background=bg, backend=backend)
    rgb = out.rgb  # [..., C, H, W, 3]
    if sky is not None:
        sky_rgb = sky.render(cameras) if hasattr(sky, "render") else sky
        rgb = rgb + (1.0 - out.alpha) * sky_rgb
    pred = rgb.movedim(-1, -3)  # [..., C, 3, H, W]
    if colour is not None:
        pred = apply_colour(pred, colour)
    loss = photometric_loss(pred, images, mask=mask, ssim_weight=ssim_weight)
    if return_render:
        return RenderCompare(loss=loss, rgb=pred, render=out)
    return loss
