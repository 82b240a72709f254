"""Adaptive density control (Kerbl et al. 2023, §5): clone, split and prune Gaussians.

Statistics: for every Gaussian visible in a training view, the norm of the gradient of the loss
with respect to its projected 2D mean, accumulated over views. The gradient is taken in pixels
(``RenderOutput.means2d.grad``) and converted to normalised device coordinates (×W/2, ×H/2) so
that the reference threshold 0.0002 applies whatever the image size.

Every ``every`` steps between ``start`` and ``stop``:

1. **prune** Gaussians with opacity < ``prune_opacity``, and (after the first opacity reset) those
   larger than ``prune_scale3d`` × scene extent in the world or ``prune_scale2d`` × image size on
   screen;
2. **grow** those whose mean gradient ≥ ``grad_threshold``: small ones (largest scale ≤
   ``percent_dense`` × extent) are **cloned**, large ones **split** into two children sampled from
   the parent's Gaussian with scales / 1.6. Under ``max_gaussians`` the candidates with the
   largest gradients go first; the count never exceeds the cap.

Every ``reset_every`` steps (before ``stop``) opacities are clamped to at most 0.01, which lets
the next prune remove floaters.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from splatnet.errors import ValidationError
from splatnet.gaussians import quat_to_rotmat
from splatnet.optimization.params import GaussianParams

SPLIT_SCALE_DIVISOR = 1.6  # 0.8 · 2 children, as in the reference code
RESET_OPACITY = 0.01


@dataclasses.dataclass
class DensifyConfig:
    """Adaptive density control settings (defaults: the reference 3DGS / gsplat values)."""

    enabled: bool = True
    """Clone, split and prune at all (refinement usually turns it off)."""
    grad_threshold: float = 0.0002
    """Mean view-space (NDC) gradient norm of a 2D mean above which a Gaussian grows."""
    percent_dense: float = 0.01
    """Largest scale, as a fraction of the scene extent, up to which a growing Gaussian is cloned
    (above: split)."""
    prune_opacity: float = 0.005
    """Gaussians below this opacity are removed."""
    prune_scale3d: float = 0.1
    """After the first opacity reset: remove Gaussians larger than this × the scene extent."""
    prune_scale2d: float = 0.15
    """After the first opacity reset: remove Gaussians whose screen radius exceeded this × the
    larger image side."""
    start: int | None = None
    """First densification step (default: min(500, iterations / 20), at least ``every``)."""
    stop: int | None = None
    """No densification from this step on (default: iterations / 2)."""
    every: int | None = None
    """Densify every this many steps (default: 100, fewer for runs under 5000 steps)."""
    reset_every: int | None = None
    """Opacity reset period (default: iterations / 10 clamped to [1000, 3000], i.e. the reference
    3000 for a 30000-step run; resets happen only before ``stop``)."""
    max_gaussians: int | None = None
    """Cap on the number of Gaussians (None: no cap)."""

    def resolved(self, iterations: int) -> DensifyConfig:
        """A copy with the schedule filled in for a run of ``iterations`` steps."""
        every = self.every if self.every is not None else min(100, max(10, iterations // 50))
        start = self.start if self.start is not None else min(500, max(every, iterations // 20))
        stop = self.stop if self.stop is not None else iterations // 2
        reset = self.reset_every
        if reset is None:
            reset = min(3000, max(1000, iterations // 10))
        for name, v in (("every", every), ("reset_every", reset)):
            if v <= 0:
                raise ValidationError(f"densify.{name}: expected a positive number of steps, got {v}")
        if self.max_gaussians is not None and self.max_gaussians <= 0:
            raise ValidationError(f"max_gaussians: expected a positive count, got {self.max_gaussians}")
        return dataclasses.replace(self, every=every, start=start, stop=stop, reset_every=reset)


class DensityController:
    """Gradient statistics and the clone / split / prune / reset steps for one optimisation."""

    def __init__(self, config: DensifyConfig, num_gaussians: int, scene_extent: float,
                 device: torch.device, generator: torch.Generator) -> None:
        if config.every is None:
            raise ValidationError("DensityController needs a resolved DensifyConfig "
                                  "(DensifyConfig.resolved(iterations))")
        self.cfg = config
        self.extent = float(scene_extent)
        self.generator = generator
        self._zero(num_gaussians, device)

    def _zero(self, n: int, device: torch.device) -> None:
        self.grad_sum = torch.zeros(n, device=device)  # [N] Σ ‖∂L/∂mean2d‖ (NDC)
        self.count = torch.zeros(n, device=device)  # [N] views in which it was visible
        self.max_radius = torch.zeros(n, device=device)  # [N] fraction of the larger image side

    # ------------------------------------------------------------------ statistics
    @torch.no_grad()
    def accumulate(self, means2d_grad: Tensor, radii: Tensor, width: int, height: int) -> None:
        """Add one render's statistics: ``means2d_grad [C, N, 2]`` pixels, ``radii [C, N, 2]``."""
        scale = means2d_grad.new_tensor([width / 2.0, height / 2.0])
        norms = (means2d_grad * scale).norm(dim=-1)  # [C, N]
        visible = (radii > 0).all(-1)  # [C, N]
        self.grad_sum += (norms * visible).sum(0)
        self.count += visible.sum(0)
        r = radii.amax(-1).to(self.max_radius.dtype) / max(width, height)  # [C, N]
        self.max_radius = torch.maximum(self.max_radius, (r * visible).amax(0))

    # ------------------------------------------------------------------ schedule
    def is_refine_step(self, step: int) -> bool:
        """Densify after ``step`` steps have been taken (1-based count)?"""
        c = self.cfg
        return c.enabled and c.start <= step < c.stop and step % c.every == 0

    def is_reset_step(self, step: int) -> bool:
        c = self.cfg
        return c.enabled and step < c.stop and step % c.reset_every == 0

    # ------------------------------------------------------------------ operations
    @torch.no_grad()
    def refine(self, params: GaussianParams, step: int) -> dict[str, int]:
        """Prune then grow (see the module docstring); resets the statistics. Returns counts."""
        c = self.cfg
        n0 = params.num_gaussians
        # 1. prune
        drop = params.opacities < c.prune_opacity
        if step > c.reset_every:
            drop |= params.scales.amax(-1) > c.prune_scale3d * self.extent
            drop |= self.max_radius > c.prune_scale2d
        if bool(drop.all()):  # never prune everything: keep the most opaque one
            drop[torch.argmax(params.opacities)] = False
        keep = ~drop
        pruned = int(drop.sum())
        if pruned:
            params.keep(keep)
            self.grad_sum, self.count = self.grad_sum[keep], self.count[keep]
            self.max_radius = self.max_radius[keep]

        # 2. grow, within the cap (each clone or split adds exactly one Gaussian)
        avg = self.grad_sum / self.count.clamp_min(1)
        grow = (avg >= c.grad_threshold) & (self.count > 0)
        budget = math.inf if c.max_gaussians is None else max(0, c.max_gaussians - params.num_gaussians)
        ids = torch.nonzero(grow).squeeze(-1)
        if len(ids) > budget:
            order = torch.sort(avg[ids], descending=True, stable=True).indices
            ids = torch.sort(ids[order[: int(budget)]]).values
        big = params.scales[ids].amax(-1) > c.percent_dense * self.extent
        clone_ids, split_ids = ids[~big], ids[big]
        if len(clone_ids):
            params.append(params.select(clone_ids))
        if len(split_ids):
            self._split(params, split_ids)

        self._zero(params.num_gaussians, params.params["means"].device)
        return {"pruned": pruned, "cloned": len(clone_ids), "split": len(split_ids),
                "before": n0, "after": params.num_gaussians}

    def _split(self, params: GaussianParams, ids: Tensor) -> None:
        """Replace each Gaussian in ``ids`` by two children drawn from it, scales / 1.6."""
        parent = params.select(ids)
        scales = torch.exp(parent["log_scales"])  # [M, 3]
        rot = quat_to_rotmat(parent["quats"])  # [M, 3, 3]
        children = []
        for _ in range(2):
            noise = torch.randn(scales.shape, generator=self.generator,
                                device=self.generator.device).to(scales)
            child = dict(parent)
            child["means"] = parent["means"] + (rot @ (noise * scales)[..., None]).squeeze(-1)
            child["log_scales"] = torch.log(scales / SPLIT_SCALE_DIVISOR)
            children.append(child)
        keep = torch.ones(params.num_gaussians, dtype=torch.bool, device=ids.device)
        keep[ids] = False
        params.keep(keep)
        params.append({n: torch.cat([children[0][n], children[1][n]]) for n in params.names})

    @torch.no_grad()
    def reset_opacity(self, params: GaussianParams) -> None:
        """Clamp every opacity to at most 0.01 (and zero its Adam moments)."""
        cap = torch.logit(torch.tensor(RESET_OPACITY)).item()
        params.reset("logit_opacities", params.params["logit_opacities"].clamp_max(cap))
