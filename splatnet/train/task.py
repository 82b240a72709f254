"""The training objective of SplatNet: reconstruct from context views, render and compare targets.

``SplatTask.loss(model, batch, step, stage)`` (the trainer's ``Task`` interface):

1. ``out = model(context images, context cameras, lidar=context LiDAR points)``;
2. ``splatnet.losses.render_and_compare`` of ``out.gaussians`` (sky composited behind them
   with weight ``1 − alpha``) at the target views, and at the context views with
   ``context_weight``: ``(1 − s)·L1 + s·(1 − SSIM)``;
3. plus, where the data has them:
   - ``depth_weight`` (or the curriculum stage's): L1 on *normalised inverse depth*
     ``near / z`` between the network's depth maps (final and coarse) and each context view's
     sparse LiDAR depth. The depth maps come from ``train_data`` (each view gets the sweep of
     its own frame, so moving cars are not smeared across frames; clips without LiDAR fall back
     on ground-truth depth maps), hence this module's ``inverse_depth_l1`` rather than
     ``losses.lidar_depth_loss``, which splats one cloud into every view of a scene;
   - ``render_depth_weight``: the same on the rendered depth of the targets where the render is
     opaque (alpha > 0.5);
   - ``sky_weight``: L1 between rendered alpha and ``1 − sky mask`` at the targets;
     ``sky_prob_weight``: ``losses.sky_probability_loss`` on the context views;
   - ``smooth_weight``: ``losses.edge_aware_smoothness`` of the inverse depth;
     ``opacity_weight`` / ``scale_weight``: ``losses.opacity_loss`` / ``losses.scale_loss``.

Every term is a mean over the batch's scenes, as the trainer requires.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from splatnet import losses


class SplatTask:
    """Render-and-compare loss of a SplatNet-like model (see the module docstring)."""

    def __init__(self, loss_cfg: Any, *, render_backend: str = "auto") -> None:
        self.cfg = loss_cfg
        self.backend = render_backend

    def loss(self, model: nn.Module, batch: Any, step: int,
             stage: Any) -> tuple[Tensor, dict[str, float]]:
        out = model(batch.context_images, batch.context_cameras, lidar=batch.context_lidar)
        core = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        # The network may run under bf16 autocast (CUDA); rendering and the losses run in float32.
        with torch.autocast(batch.context_images.device.type, enabled=False):
            return self._objective(_float32(out), batch, stage, float(core.config.near))

    def _objective(self, out: Any, batch: Any, stage: Any,
                   near: float) -> tuple[Tensor, dict[str, float]]:
        cfg = self.cfg
        metrics: dict[str, float] = {}
        valid = batch.target_valid
        rc = losses.render_and_compare(out.gaussians, batch.target_cameras, batch.target_images,
                                       sky=out.sky, mask=valid, ssim_weight=cfg.ssim_weight,
                                       backend=self.backend, return_render=True)
        total = cfg.photometric_weight * rc.loss
        metrics["photometric"] = float(rc.loss.detach())
        metrics["psnr"] = mean_psnr(rc.rgb, batch.target_images)
        r = rc.render

        if cfg.context_weight > 0:
            cc = losses.render_and_compare(out.gaussians, batch.context_cameras,
                                           batch.context_images, sky=out.sky,
                                           ssim_weight=cfg.ssim_weight, backend=self.backend,
                                           return_render=True)
            total = total + cfg.context_weight * cc.loss
            metrics["context_psnr"] = mean_psnr(cc.rgb, batch.context_images)

        depth_w = cfg.depth_weight if stage.depth_weight is None else stage.depth_weight
        if batch.context_depths is not None and depth_w > 0:
            d_fine = inverse_depth_l1(out.depth, batch.context_depths, near)
            d_coarse = inverse_depth_l1(out.coarse_depth, batch.context_depths, near)
            total = total + depth_w * (d_fine + d_coarse)
            metrics["depth_l1"] = float(d_fine.detach())
            metrics["coarse_depth_l1"] = float(d_coarse.detach())

        if batch.target_depths is not None and cfg.render_depth_weight > 0:
            rd = r.depth.movedim(-1, -3)  # [B, T, 1, H, W]
            opaque = r.alpha.movedim(-1, -3).detach() > 0.5
            gt = torch.where(opaque, batch.target_depths, torch.zeros_like(batch.target_depths))
            d_r = inverse_depth_l1(rd, gt, near, pool=False)
            total = total + cfg.render_depth_weight * d_r
            metrics["render_depth_l1"] = float(d_r.detach())

        if batch.target_sky is not None and cfg.sky_weight > 0:
            sky = batch.target_sky.movedim(-3, -1)  # [B, T, H, W, 1], -1 = unknown
            known = (sky >= 0).to(r.alpha.dtype)
            err = (r.alpha - (1 - sky.clamp_min(0))).abs() * known
            s = err.sum() / known.sum().clamp_min(1)
            total = total + cfg.sky_weight * s
            metrics["sky_l1"] = float(s.detach())

        if (batch.context_sky is not None and out.sky_prob is not None
                and cfg.sky_prob_weight > 0 and bool((batch.context_sky >= 0).all())):
            sp = losses.sky_probability_loss(out.sky_prob, batch.context_sky[:, :, 0])
            total = total + cfg.sky_prob_weight * sp
            metrics["sky_prob_bce"] = float(sp.detach())

        if cfg.smooth_weight > 0:
            sm = losses.edge_aware_smoothness(1.0 / out.depth.clamp_min(1e-6),
                                              batch.context_images)
            total = total + cfg.smooth_weight * sm
        if cfg.opacity_weight > 0:
            total = total + cfg.opacity_weight * losses.opacity_loss(out.gaussians.opacities)
        if cfg.scale_weight > 0:
            total = total + cfg.scale_weight * losses.scale_loss(out.gaussians.scales)

        metrics["gaussians"] = float(out.gaussians.num_gaussians)
        return total, metrics


def _float32(out: Any) -> Any:
    """``out`` with the Gaussians, depth maps and sky latent the losses read in float32."""
    import dataclasses

    f32 = torch.float32
    changes: dict[str, Any] = {}
    if out.gaussians.dtype != f32:
        changes["gaussians"] = out.gaussians.to(f32)
    for name in ("depth", "coarse_depth", "sky_prob"):
        t = getattr(out, name, None)
        if t is not None and t.dtype != f32:
            changes[name] = t.float()
    sky = getattr(out, "sky", None)
    if sky is not None and sky.latent.dtype != f32:
        changes["sky"] = type(sky)(sky.model, sky.latent.float())
    return dataclasses.replace(out, **changes) if changes else out


def mean_psnr(pred: Tensor, target: Tensor) -> float:
    """Mean over images ``[..., 3, H, W]`` of the PSNR (dB) of ``pred`` clamped to [0, 1]."""
    with torch.no_grad():
        mse = (pred.float().clamp(0, 1) - target).square().mean(dim=(-3, -2, -1))
        return float((-10 * torch.log10(mse.clamp_min(1e-10))).mean())


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
