"""The optimisation loop: Gaussians + posed images → better Gaussians (classic 3DGS training).

:func:`fit` is the one loop behind ``splatnet optimize`` (from an initialisation, with adaptive
density control) and :func:`refine` (a few steps from given Gaussians, e.g. the network's output).

Per step, as in Kerbl et al. 2023 and gsplat's ``simple_trainer``: one training view in a seeded
random order (a fresh permutation per epoch), render with the active SH degree, loss
``(1 − λ) L1 + λ (1 − SSIM)`` with λ = 0.2, Adam with per-parameter learning rates (the
position rate × scene extent, decaying exponentially 100× over the run), then the density
control of :mod:`.densify`. Pixels outside a view's validity mask count as perfect.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from splatnet import metrics
from splatnet.cameras import Cameras
from splatnet.errors import ValidationError
from splatnet.gaussians import Gaussians
from splatnet.losses import photometric_loss
from splatnet.optimization.densify import DensifyConfig, DensityController
from splatnet.optimization.params import GaussianParams


@dataclasses.dataclass
class OptimConfig:
    """Per-scene optimisation settings; defaults are the reference 3DGS values."""

    iterations: int = 7000
    """Optimisation steps (one view each)."""
    sh_degree: int = 3
    """SH degree of the result."""
    sh_interval: int | None = None
    """Steps between SH band activations (0: all bands from the start; default: 1000, or
    iterations / (2 (sh_degree + 1)) when smaller, so short runs reach the full degree halfway)."""
    lr_means: float = 1.6e-4
    """Initial position learning rate, times the scene extent."""
    lr_means_final: float = 1.6e-6
    """Final position learning rate (exponential decay), times the scene extent."""
    lr_sh_dc: float = 2.5e-3
    """SH DC (base colour) learning rate."""
    lr_sh_rest: float | None = None
    """Higher SH bands' learning rate (default: lr_sh_dc / 20)."""
    lr_opacity: float = 0.05
    """Opacity (logit) learning rate."""
    lr_scales: float = 5e-3
    """Scale (log) learning rate."""
    lr_quats: float = 1e-3
    """Rotation (raw quaternion) learning rate."""
    lr_velocities: float = 2e-3
    """Velocity learning rate of dynamic Gaussians, times the scene extent (no decay)."""
    ssim_weight: float = 0.2
    """λ in (1 − λ) L1 + λ (1 − SSIM)."""
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Colour behind the Gaussians, in training and evaluation."""
    antialiased: bool = False
    """Render with the Mip-Splatting opacity compensation."""
    scene_extent: float | None = None
    """Scene size in world units (default: see :func:`scene_extent`)."""
    backend: str = "auto"
    """Renderer backend (``auto``: compiled kernels, or the torch reference when they are not
    built, with a warning)."""
    seed: int = 0
    """Seed of the view order and of densification's sampling."""
    log_every: int = 10
    """Record the loss every this many steps (``FitResult.history``)."""
    densify: DensifyConfig = dataclasses.field(default_factory=DensifyConfig)
    """Adaptive density control."""

    def learning_rates(self, extent: float) -> dict[str, float]:
        return {
            "means": self.lr_means * extent,
            "quats": self.lr_quats,
            "log_scales": self.lr_scales,
            "logit_opacities": self.lr_opacity,
            "sh_dc": self.lr_sh_dc,
            "sh_rest": self.lr_sh_rest if self.lr_sh_rest is not None else self.lr_sh_dc / 20.0,
            "velocities": self.lr_velocities * extent,
        }

    def resolved_sh_interval(self) -> int:
        if self.sh_interval is not None:
            if self.sh_interval < 0:
                raise ValidationError(f"sh_interval: expected >= 0, got {self.sh_interval}")
            return self.sh_interval
        return max(1, min(1000, self.iterations // (2 * (self.sh_degree + 1))))

    def check(self) -> None:
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, int) or self.iterations < 0:
            raise ValidationError(f"iterations: expected a non-negative int, got {self.iterations!r}")
        if not 0 <= self.sh_degree <= 3:
            raise ValidationError(f"sh_degree: expected 0-3, got {self.sh_degree}")
        if not 0.0 <= self.ssim_weight <= 1.0:
            raise ValidationError(f"ssim_weight: expected a value in [0, 1], got {self.ssim_weight}")
        for name in ("lr_means", "lr_means_final", "lr_sh_dc", "lr_opacity", "lr_scales", "lr_quats"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValidationError(f"{name}: expected a finite learning rate >= 0, got {v}")


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns."""

    gaussians: Gaussians
    """The optimised Gaussians (detached, unit quaternions)."""
    steps: int
    seconds: float
    """Wall time of the loop (not of loading or evaluation)."""
    history: list[dict[str, Any]]
    """``{"step", "loss", "num_gaussians"}`` every ``log_every`` steps, and densification events."""
    backend: str


# ----------------------------------------------------------------------------- helpers
def resolve_backend(backend: str, device: torch.device, dtype: torch.dtype = torch.float32) -> str:
    """The backend ``backend`` means here (:func:`splatnet.rendering.backends.select`); ``auto``
    falls back on the pure-PyTorch reference, with a warning, when the compiled CPU kernels are
    not built (slow, but optimisation still runs)."""
    from splatnet.rendering import backends

    return backends.select(backend, device, dtype, fallback_to_reference=True).name


def scene_extent(cameras: Cameras, means: Tensor | None = None) -> float:
    """A length for scale-dependent settings: 1.1 × the larger of the cameras' spread (max
    distance of a centre from their mean, the reference 3DGS rule) and the median distance of
    the Gaussians from that mean. The second term matters for driving rigs, whose cameras sit
    within a few metres while the scene spans tens."""
    centres = cameras.centers.reshape(-1, 3).to(torch.float64)
    mid = centres.mean(0)
    radius = float((centres - mid).norm(dim=-1).max())
    if means is not None and means.numel():
        radius = max(radius, float((means.detach().to(mid) - mid).norm(dim=-1).median()))
    return 1.1 * max(radius, 1e-6)


def _check_views(views) -> tuple[Cameras, Tensor, Tensor | None]:
    cams, images = getattr(views, "cameras", None), getattr(views, "images", None)
    if not isinstance(cams, Cameras) or not isinstance(images, Tensor):
        raise ValidationError("views: expected an object with .cameras (splatnet.Cameras [V]) and "
                              ".images [V, H, W, 3] (e.g. Clip.views())")
    if cams.batch_shape != ():
        raise ValidationError(f"views.cameras: expected [V] cameras, got batch shape {cams.batch_shape}")
    want = (cams.num_cameras, cams.height, cams.width, 3)
    if tuple(images.shape) != want:
        raise ValidationError(f"views.images: expected shape {list(want)} (V, H, W, 3), "
                              f"got {list(images.shape)}")
    masks = getattr(views, "masks", None)
    if masks is not None and tuple(masks.shape) != want[:3] + (1,):
        raise ValidationError(f"views.masks: expected shape {list(want[:3]) + [1]}, got {list(masks.shape)}")
    return cams, images, masks


def _position_lr(step: int, total: int, lr0: float, lr1: float) -> float:
    """Exponential interpolation from lr0 (step 0) to lr1 (step total), as in 3DGS."""
    if lr0 <= 0 or lr1 <= 0:  # no log-space interpolation through 0: keep the initial rate
        return lr0
    t = min(max(step / max(total, 1), 0.0), 1.0)
    return math.exp((1 - t) * math.log(lr0) + t * math.log(lr1))


# ----------------------------------------------------------------------------- the loop
def fit(
    gaussians: Gaussians,
    views,
    config: OptimConfig | None = None,
    *,
    progress: bool = False,
    callback: Callable[[int, Gaussians], None] | None = None,
    backgrounds: Tensor | None = None,
) -> FitResult:
    """Optimise ``gaussians`` on ``views`` (``.cameras [V]``, ``.images [V, H, W, 3]``, optional
    ``.masks [V, H, W, 1]``) for ``config.iterations`` steps.

    Everything runs on the Gaussians' device; views are moved there. ``callback(step, g)`` (if
    given) is called after every step with the detached current Gaussians. ``backgrounds``
    (optional, ``[V, H, W, 3]``, fixed) replaces ``config.background`` by a per-pixel image behind
    the Gaussians of each view, e.g. a network's sky. The same inputs, config and seed give the
    same result on the same machine and backend.
    """
    cfg = config or OptimConfig()
    cfg.check()
    device = gaussians.device
    cams, images, masks = _check_views(views)
    cams = cams.to(device)
    images = images.to(device, torch.float32)
    masks = None if masks is None else masks.to(device)
    if cfg.ssim_weight > 0 and min(cams.width, cams.height) < metrics.SSIM_WINDOW:
        raise ValidationError(f"views: images of {cams.height}x{cams.width} (HxW) are too small for the "
                              f"SSIM loss (need at least {metrics.SSIM_WINDOW} pixels a side)")
    backend = resolve_backend(cfg.backend, device, gaussians.dtype)
    extent = cfg.scene_extent if cfg.scene_extent is not None else scene_extent(cams, gaussians.means)
    lrs = cfg.learning_rates(extent)
    params = GaussianParams(gaussians, lrs, cfg.sh_degree)
    dcfg = cfg.densify.resolved(cfg.iterations)
    generator = torch.Generator().manual_seed(int(cfg.seed))
    density = DensityController(dcfg, params.num_gaussians, extent, device, generator)
    if dcfg.max_gaussians is not None and params.num_gaussians > dcfg.max_gaussians:
        raise ValidationError(f"max_gaussians: the starting point already has {params.num_gaussians} "
                              f"Gaussians, more than the cap {dcfg.max_gaussians}")
    sh_interval = cfg.resolved_sh_interval()
    background = torch.tensor(cfg.background, dtype=torch.float32, device=device)
    backgrounds = _check_backgrounds(backgrounds, images, device)
    single = [cams[[v]] for v in range(cams.num_cameras)]
    history: list[dict[str, Any]] = []
    order: list[int] = []

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.iterations, desc="optimise", unit="step", dynamic_ncols=True)
    start = time.perf_counter()
    for step in range(1, cfg.iterations + 1):
        if not order:
            order = torch.randperm(cams.num_cameras, generator=generator).tolist()
        v = order.pop()
        params.set_lr("means", _position_lr(step - 1, cfg.iterations, lrs["means"],
                                             cfg.lr_means_final * extent))
        degree = cfg.sh_degree if sh_interval == 0 else min(cfg.sh_degree, (step - 1) // sh_interval)
        if backgrounds is None:
            out = _render(params.gaussians(), single[v], degree, background, cfg, backend)
            pred = out.rgb[0]
        else:
            out = _render(params.gaussians(), single[v], degree, None, cfg, backend)
            pred = out.rgb[0] + (1.0 - out.alpha[0]) * backgrounds[v]
        loss = _loss(pred, images[v], None if masks is None else masks[v], cfg.ssim_weight)
        params.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if dcfg.enabled and step < dcfg.stop and out.means2d.grad is not None:
            density.accumulate(out.means2d.grad, out.radii, cams.width, cams.height)
        params.optimizer.step()
        if density.is_refine_step(step):
            event = density.refine(params, step)
            history.append({"step": step, "densify": event})
        if density.is_reset_step(step):
            density.reset_opacity(params)
            history.append({"step": step, "opacity_reset": True})
        if step % cfg.log_every == 0 or step == cfg.iterations:
            history.append({"step": step, "loss": float(loss.detach()),
                            "num_gaussians": params.num_gaussians})
        if bar is not None:
            bar.update(1)
            if step % 25 == 0:
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}", n=params.num_gaussians)
        if callback is not None:
            callback(step, params.export())
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # the wall time must include the queued kernels
    seconds = time.perf_counter() - start
    if bar is not None:
        bar.close()
    return FitResult(params.export(), cfg.iterations, seconds, history, backend)


def _check_backgrounds(backgrounds: Tensor | None, images: Tensor,
                       device: torch.device) -> Tensor | None:
    if backgrounds is None:
        return None
    if not isinstance(backgrounds, Tensor) or tuple(backgrounds.shape) != tuple(images.shape):
        got = list(backgrounds.shape) if isinstance(backgrounds, Tensor) else type(backgrounds).__name__
        raise ValidationError(f"backgrounds: expected per-view images of shape {list(images.shape)} "
                              f"(V, H, W, 3), got {got}")
    return backgrounds.detach().to(device, torch.float32)


def _render(g: Gaussians, cam: Cameras, degree: int, background: Tensor | None, cfg: OptimConfig,
            backend: str):
    from splatnet.rendering import render

    return render(g, cam, sh_degree=degree, background=background, antialiased=cfg.antialiased,
                  backend=backend)


def _loss(pred: Tensor, target: Tensor, mask: Tensor | None, ssim_weight: float) -> Tensor:
    """``(1 − λ) L1 + λ (1 − SSIM)`` of one ``[H, W, 3]`` image; masked pixels count as exact."""
    if mask is not None:
        pred = torch.where(mask, pred, target)
    return photometric_loss(pred.movedim(-1, -3), target.movedim(-1, -3), ssim_weight=ssim_weight)


# ----------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate(gaussians: Gaussians, views, *, sh_degree: int | None = None,
             background: tuple[float, float, float] | Tensor = (0.0, 0.0, 0.0),
             antialiased: bool = False, backend: str = "auto") -> dict[str, Any]:
    """PSNR and SSIM of renders of ``gaussians`` against ``views``.

    ``background`` is a colour ``[3]`` or per-view images ``[V, H, W, 3]`` (e.g. a sky). Renders
    are clamped to ``[0, 1]``. With validity masks, PSNR uses only valid pixels and SSIM
    counts invalid pixels as exact. Returns ``{"psnr", "ssim"}`` (means over views) and
    ``"per_view"`` (a list of ``{"psnr", "ssim"}``).
    """
    from splatnet.rendering import render

    device = gaussians.device
    cams, images, masks = _check_views(views)
    cams = cams.to(device)
    backend = resolve_backend(backend, device, gaussians.dtype)
    bg = torch.as_tensor(background, dtype=torch.float32, device=device)
    per_pixel = bg.dim() == 4
    if per_pixel:
        bg = _check_backgrounds(bg, images, device)
    per_view = []
    for v in range(cams.num_cameras):
        out = render(gaussians, cams[[v]], sh_degree=sh_degree,
                     background=None if per_pixel else bg, antialiased=antialiased, backend=backend)
        pred = out.rgb[0] + (1.0 - out.alpha[0]) * bg[v] if per_pixel else out.rgb[0]
        pred = pred.clamp(0, 1)
        gt = images[v].to(device, torch.float32)
        if masks is not None:
            m = masks[v].to(device)
            p = float(metrics.psnr(pred, gt, mask=m))
            pred = torch.where(m, pred, gt)
        else:
            p = float(metrics.psnr(pred, gt))
        per_view.append({"psnr": p, "ssim": float(metrics.ssim(pred, gt))})
    n = max(len(per_view), 1)
    return {"psnr": sum(r["psnr"] for r in per_view) / n,
            "ssim": sum(r["ssim"] for r in per_view) / n,
            "per_view": per_view}


# ----------------------------------------------------------------------------- refinement
def refine(gaussians: Gaussians, views, steps: int, *, config: OptimConfig | None = None,
           densify: bool = False, seed: int = 0, progress: bool = False,
           backgrounds: Tensor | None = None) -> Gaussians:
    """Run ``steps`` optimisation steps starting from ``gaussians`` (e.g. the network's output).

    Keeps the Gaussians' SH degree with every band active from the first step, the reference
    learning rates (position rate decaying over the ``steps``) and, unless ``densify``, the
    Gaussian count. ``config`` overrides everything but ``iterations``. ``backgrounds``
    ``[V, H, W, 3]`` (optional) is a fixed per-pixel background of each view, e.g. the network's
    sky rendered for the views (``sky.render(cameras)``), composited as ``rgb + (1 − alpha) · bg``.
    Returns new Gaussians on the input's device; the input is not modified.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValidationError(f"steps: expected a non-negative int, got {steps!r}")
    if config is None:
        config = OptimConfig(sh_degree=gaussians.sh_degree, sh_interval=0, seed=seed)
        config.densify.enabled = densify
    config = dataclasses.replace(config, iterations=steps)
    return fit(gaussians, views, config, progress=progress, backgrounds=backgrounds).gaussians
