"""The training objective of SplatNet: reconstruct from context views, render and compare.

``SplatTask.loss(model, batch, step, stage)`` (the trainer's ``Task`` interface) runs the network
on the context views (``out = model(images, cameras, lidar=...)``) and adds up the rows of
:data:`OBJECTIVE`: each row names a loss term, the ``LossConfig`` field that weights it and the
function that computes it from the network output and the batch (``None`` when the batch lacks
what it needs, e.g. LiDAR or sky masks). A new term is one function here (or in
:mod:`splatnet.losses`), one ``LossConfig`` field and one row.

The terms (every one a mean over the batch's scenes, as the trainer requires):

- ``photometric`` / ``context``: ``losses.render_and_compare`` of ``out.gaussians`` (sky
  composited behind them with weight ``1 − alpha``) at the target / the context views:
  ``(1 − s)·L1 + s·(1 − SSIM)``; with ``model.colour_affine`` the render of a view whose camera
  is a context camera goes through that camera's colour matrix first (other cameras: identity);
- ``depth`` (``depth_weight``, or the curriculum stage's): ``losses.inverse_depth_l1`` between the
  network's depth maps (final + coarse) and each context view's sparse LiDAR depth. The maps come
  from ``train.data`` (each view gets the sweep of its own frame, so moving cars are not smeared
  across frames; clips without LiDAR fall back on ground-truth depth maps);
- ``render_depth``: the same on the rendered depth of the targets where the render is opaque;
- ``sky``: ``losses.sky_opacity_loss`` at the targets; ``sky_prob``:
  ``losses.sky_probability_loss`` on the context views;
- ``smooth``: ``losses.edge_aware_smoothness`` of the inverse depth; ``opacity`` / ``scale``:
  ``losses.opacity_loss`` / ``losses.scale_loss``.

Losses and metrics stay tensors (no device sync) until the trainer logs them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from splatnet import losses
from splatnet.metrics import psnr


@dataclasses.dataclass
class Step:
    """What a loss term reads: the network output, the batch, the stage, and renders made once."""

    out: Any
    batch: Any
    stage: Any
    near: float
    cfg: Any
    backend: str = "auto"
    renders: dict[str, Any] = dataclasses.field(default_factory=dict)
    metrics: dict[str, Tensor] = dataclasses.field(default_factory=dict)

    def compare(self, which: str) -> Any:
        """``losses.render_and_compare`` at the ``"target"`` or ``"context"`` views (made once)."""
        if which not in self.renders:
            b = self.batch
            cams, images = ((b.target_cameras, b.target_images) if which == "target"
                            else (b.context_cameras, b.context_images))
            colour = getattr(self.out, "colour", None)  # a context camera's render: its matrix
            self.renders[which] = losses.render_and_compare(
                self.out.gaussians, cams, images, sky=self.out.sky,
                mask=b.target_valid if which == "target" else getattr(b, "context_valid", None),
                ssim_weight=self.cfg.ssim_weight, backend=self.backend, return_render=True,
                colour=None if colour is None else colour.for_cameras(cams))
        return self.renders[which]


def _photometric(s: Step) -> Tensor:
    rc = s.compare("target")
    s.metrics["psnr"] = psnr(rc.rgb.detach().float().clamp(0, 1), s.batch.target_images).mean()
    return rc.loss


def _context(s: Step) -> Tensor:
    rc = s.compare("context")
    s.metrics["context_psnr"] = psnr(rc.rgb.detach().float().clamp(0, 1),
                                     s.batch.context_images).mean()
    return rc.loss


def _depth(s: Step) -> Tensor | None:
    if s.batch.context_depths is None:
        return None
    fine = losses.inverse_depth_l1(_network_depth(s), s.batch.context_depths, s.near)
    coarse = losses.inverse_depth_l1(s.out.coarse_depth, s.batch.context_depths, s.near)
    s.metrics["coarse_depth_l1"] = coarse.detach()
    s.metrics["depth_l1"] = fine.detach()
    return fine + coarse


def _network_depth(s: Step) -> Tensor:
    """The head's own depth: before LiDAR depth fusion moved the Gaussians (the depth loss and
    the smoothness term teach the network's prediction, not the LiDAR it was given)."""
    return s.out.depth if s.out.network_depth is None else s.out.network_depth


def _render_depth(s: Step) -> Tensor | None:
    if s.batch.target_depths is None:
        return None
    r = s.compare("target").render
    rd = r.depth.movedim(-1, -3)  # [B, T, 1, H, W]
    opaque = r.alpha.movedim(-1, -3).detach() > 0.5
    gt = torch.where(opaque, s.batch.target_depths, torch.zeros_like(s.batch.target_depths))
    return losses.inverse_depth_l1(rd, gt, s.near, pool=False)


def _sky(s: Step) -> Tensor | None:
    if s.batch.target_sky is None:
        return None
    sky = s.batch.target_sky.movedim(-3, -1)[..., 0]  # [B, T, H, W], -1 = unknown
    alpha = s.compare("target").render.alpha
    return losses.sky_opacity_loss(alpha, sky.clamp_min(0), mask=sky >= 0)


def _sky_prob(s: Step) -> Tensor | None:
    sky = s.batch.context_sky
    if sky is None or s.out.sky_prob is None or not bool((sky >= 0).all()):
        return None
    return losses.sky_probability_loss(s.out.sky_prob, sky[:, :, 0])


def _smooth(s: Step) -> Tensor:
    return losses.edge_aware_smoothness(1.0 / _network_depth(s).clamp_min(1e-6),
                                        s.batch.context_images)


def _opacity(s: Step) -> Tensor:
    return losses.opacity_loss(s.out.gaussians.opacities)


def _scale(s: Step) -> Tensor:
    return losses.scale_loss(s.out.gaussians.scales)


@dataclasses.dataclass(frozen=True)
class Term:
    """One row of the objective: ``weight · fn(step)``, logged as ``log`` when it is set."""

    name: str
    weight: Callable[[Any, Any], float]  # (LossConfig, StageConfig) -> weight
    fn: Callable[[Step], Tensor | None]
    log: str | None = None


def _field(name: str) -> Callable[[Any, Any], float]:
    return lambda cfg, stage: getattr(cfg, name)


#: SplatNet's training objective (see the module docstring).
OBJECTIVE: tuple[Term, ...] = (
    Term("photometric", _field("photometric_weight"), _photometric, log="photometric"),
    Term("context", _field("context_weight"), _context),
    Term("depth", lambda cfg, stage: cfg.depth_weight if stage.depth_weight is None
         else stage.depth_weight, _depth),
    Term("render_depth", _field("render_depth_weight"), _render_depth, log="render_depth_l1"),
    Term("sky", _field("sky_weight"), _sky, log="sky_l1"),
    Term("sky_prob", _field("sky_prob_weight"), _sky_prob, log="sky_prob_bce"),
    Term("smooth", _field("smooth_weight"), _smooth),
    Term("opacity", _field("opacity_weight"), _opacity),
    Term("scale", _field("scale_weight"), _scale),
)


class SplatTask:
    """Render-and-compare loss of a SplatNet-like model (see the module docstring)."""

    def __init__(self, loss_cfg: Any, *, render_backend: str = "auto",
                 objective: tuple[Term, ...] = OBJECTIVE) -> None:
        self.cfg = loss_cfg
        self.backend = render_backend
        self.objective = objective

    def loss(self, model: nn.Module, batch: Any, step: int,
             stage: Any) -> tuple[Tensor, dict[str, Tensor]]:
        valid = getattr(batch, "context_valid", None)
        if valid is None:
            out = model(batch.context_images, batch.context_cameras, lidar=batch.context_lidar)
        else:  # Gaussians of invalid context pixels (the ego's hood) are switched off
            out = model(batch.context_images, batch.context_cameras, lidar=batch.context_lidar,
                        valid=valid)
        core = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        # The network may run under bf16 autocast (CUDA); rendering and the losses run in float32.
        with torch.autocast(batch.context_images.device.type, enabled=False):
            return self._objective(_float32(out), batch, stage, float(core.config.near))

    def _objective(self, out: Any, batch: Any, stage: Any,
                   near: float) -> tuple[Tensor, dict[str, Tensor]]:
        s = Step(out, batch, stage, near, self.cfg, self.backend)
        total = out.gaussians.means.new_zeros(())
        for term in self.objective:
            w = term.weight(self.cfg, stage)
            if w <= 0:
                continue
            value = term.fn(s)
            if value is None:
                continue
            total = total + w * value
            if term.log is not None:
                s.metrics[term.log] = value.detach()
        s.metrics["gaussians"] = total.new_tensor(float(out.gaussians.num_gaussians))
        return total, s.metrics


def _float32(out: Any) -> Any:
    """``out`` with the Gaussians, depth maps and sky latent the losses read in float32."""
    f32 = torch.float32
    changes: dict[str, Any] = {}
    if out.gaussians.dtype != f32:
        changes["gaussians"] = out.gaussians.to(f32)
    for name in ("depth", "network_depth", "coarse_depth", "sky_prob"):
        t = getattr(out, name, None)
        if t is not None and t.dtype != f32:
            changes[name] = t.float()
    colour = getattr(out, "colour", None)
    if colour is not None and colour.matrices.dtype != f32:
        changes["colour"] = colour.to(f32)
    sky = getattr(out, "sky", None)
    if sky is not None and sky.latent.dtype != f32:
        changes["sky"] = type(sky)(sky.model, sky.latent.float())
    return dataclasses.replace(out, **changes) if changes else out
