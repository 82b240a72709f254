"""The training objective of SplatNet: reconstruct from context views, render and compare targets.

``SplatTask.loss(model, batch, step, stage)`` (the trainer's ``Task`` interface):

1. ``out = model(context images, context cameras, lidar=context LiDAR points)``;
2. render ``out.gaussians`` into the target cameras (and, with ``loss.context_weight`` > 0, into
   the context cameras), compositing the predicted sky behind them with weight ``1 − alpha``;
3. ``l1_weight · L1 + ssim_weight · (1 − SSIM)`` on the composited colour, plus
   - ``depth_weight`` (or the curriculum stage's): L1 on *normalised inverse depth*
     ``near / z`` between the network's depth maps (final and coarse) and the sparse LiDAR /
     ground-truth depth of the context views (per cell: the nearest point, by max-pooling
     inverse depth);
   - ``render_depth_weight``: the same on the rendered depth of the targets where it is known
     and the render is opaque (alpha > 0.5);
   - ``sky_weight``: L1 between rendered alpha and ``1 − sky mask`` where a sky mask exists.

Every term is a mean over the batch's scenes, as the trainer requires.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .metrics import ssim_map


class SplatTask:
    """Render-and-compare loss of a SplatNet-like model (see the module docstring)."""

    def __init__(self, loss_cfg: Any, *, render_backend: str = "auto") -> None:
        self.cfg = loss_cfg
        self.backend = render_backend

    def loss(self, model: nn.Module, batch: Any, step: int,
             stage: Any) -> tuple[Tensor, dict[str, float]]:
        from .render import render

        cfg = self.cfg
        out = model(batch.context_images, batch.context_cameras, lidar=batch.context_lidar)
        core = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        near = float(core.config.near)
        metrics: dict[str, float] = {}

        r = render(out.gaussians, batch.target_cameras, backend=self.backend)
        rgb = _composite(r.rgb, r.alpha, out.sky, batch.target_cameras)
        target = batch.target_images.permute(0, 1, 3, 4, 2)  # [B, T, H, W, 3]
        valid = None if batch.target_valid is None else batch.target_valid.permute(0, 1, 3, 4, 2)
        photo, m = photometric_loss(rgb, target, valid, cfg.l1_weight, cfg.ssim_weight)
        metrics.update(m)
        total = photo

        if cfg.context_weight > 0:
            rc = render(out.gaussians, batch.context_cameras, backend=self.backend)
            rgbc = _composite(rc.rgb, rc.alpha, out.sky, batch.context_cameras)
            pc, mc = photometric_loss(rgbc, batch.context_images.permute(0, 1, 3, 4, 2), None,
                                      cfg.l1_weight, cfg.ssim_weight)
            total = total + cfg.context_weight * pc
            metrics["context_psnr"] = mc["psnr"]

        depth_w = cfg.depth_weight if stage.depth_weight is None else stage.depth_weight
        if batch.context_depths is not None and depth_w > 0:
            d_fine = inverse_depth_l1(out.depth, batch.context_depths, near)
            d_coarse = inverse_depth_l1(out.coarse_depth, batch.context_depths, near)
            total = total + depth_w * (d_fine + d_coarse)
            metrics["depth_l1"] = float(d_fine.detach())
            metrics["coarse_depth_l1"] = float(d_coarse.detach())

        if batch.target_depths is not None and cfg.render_depth_weight > 0:
            rd = r.depth.permute(0, 1, 4, 2, 3)  # [B, T, 1, H, W]
            opaque = r.alpha.permute(0, 1, 4, 2, 3).detach() > 0.5
            gt = torch.where(opaque, batch.target_depths, torch.zeros_like(batch.target_depths))
            d_r = inverse_depth_l1(rd, gt, near, pool=False)
            total = total + cfg.render_depth_weight * d_r
            metrics["render_depth_l1"] = float(d_r.detach())

        if batch.target_sky is not None and cfg.sky_weight > 0:
            sky = batch.target_sky.permute(0, 1, 3, 4, 2)  # [B, T, H, W, 1]
            known = (sky >= 0).to(r.alpha.dtype)
            err = (r.alpha - (1 - sky.clamp_min(0))).abs() * known
            s = err.sum() / known.sum().clamp_min(1)
            total = total + cfg.sky_weight * s
            metrics["sky_l1"] = float(s.detach())

        metrics["gaussians"] = float(out.gaussians.num_gaussians)
        return total, metrics


def _composite(rgb: Tensor, alpha: Tensor, sky: Any, cameras: Any) -> Tensor:
    """``rgb + (1 − alpha) · sky colour`` (the renderer drew on black)."""
    if sky is None:
        return rgb
    return rgb + (1 - alpha) * sky.render(cameras).to(rgb.dtype)


def photometric_loss(pred: Tensor, target: Tensor, valid: Tensor | None, l1_weight: float,
                     ssim_weight: float) -> tuple[Tensor, dict[str, float]]:
    """``l1_weight · L1 + ssim_weight · (1 − SSIM)`` over ``[..., H, W, 3]`` images."""
    pred32 = pred.float()
    err = (pred32 - target).abs()
    if valid is not None:
        w = valid.to(err.dtype)
        l1 = (err * w).sum() / (w.sum() * 3).clamp_min(1)
    else:
        l1 = err.mean()
    loss = l1_weight * l1
    metrics = {"l1": float(l1.detach())}
    h, w_ = pred.shape[-3:-1]
    if ssim_weight > 0 and min(h, w_) >= 11:
        s = ssim_map(pred32.clamp(0, 1), target).mean()
        loss = loss + ssim_weight * (1 - s)
        metrics["ssim"] = float(s.detach())
    with torch.no_grad():
        mse = (pred32.clamp(0, 1) - target).square().mean(dim=(-3, -2, -1))
        metrics["psnr"] = float((-10 * torch.log10(mse.clamp_min(1e-10))).mean())
    return loss, metrics


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
