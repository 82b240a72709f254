"""``optimize(clip)``: classic per-scene 3DGS of one log clip, with a held-out score.

Steps: choose training and held-out views (:func:`splatnet.clip.split.split_views`), initialise Gaussians
(:mod:`.init`), optimise (:func:`~splatnet.optimization.fit.fit`), evaluate on the held-out views
(:func:`~splatnet.optimization.fit.evaluate`). The scene is treated as static: moving objects are
whatever the optimisation makes of them.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from splatnet.clip.split import Split, default_holdout_frames, split_views  # noqa: F401 - re-exported
from splatnet.device import resolve_device
from splatnet.errors import ValidationError
from splatnet.gaussians import Gaussians
from splatnet.optimization import init as init_mod
from splatnet.optimization.fit import FitResult, OptimConfig, evaluate, fit

INITS = ("lidar", "random", "network", "network+lidar")

#: Default number of starting points (LiDAR points after voxel downsampling, or random points).
NUM_INIT_POINTS = 100_000


@dataclasses.dataclass
class OptimResult:
    """What :func:`optimize_clip` returns."""

    gaussians: Gaussians
    metrics: dict[str, Any]
    """``{"psnr", "ssim", "per_view", "views", "held_out"}`` on the held-out views (on the
    training views, with ``held_out`` False, when the clip is too short to hold any out)."""
    split: Split
    init_seconds: float
    """Loading the views and building the initial Gaussians."""
    fit: FitResult
    num_initial: int

    @property
    def seconds(self) -> float:
        """Initialisation + optimisation wall time (evaluation excluded)."""
        return self.init_seconds + self.fit.seconds


def image_size(clip, cameras: Sequence[str], downscale: float) -> tuple[int, int]:
    """``(H, W)`` optimisation runs at: the first of ``cameras`` divided by ``downscale``."""
    if not downscale >= 1.0:
        raise ValidationError(f"downscale: expected a factor >= 1, got {downscale}")
    cam = clip.camera(cameras[0])
    return max(16, round(cam.height / downscale)), max(16, round(cam.width / downscale))


def optimize_clip(
    clip,
    *,
    iterations: int = 7000,
    init: str = "lidar",
    holdout_frames: Sequence[int] | None = None,
    holdout_cameras: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    max_gaussians: int | None = None,
    seed: int = 0,
    downscale: float = 1.0,
    num_init_points: int = NUM_INIT_POINTS,
    config: OptimConfig | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> OptimResult:
    """Optimise Gaussians for ``clip`` (a :class:`splatnet.Clip` or its path) and score them.

    Args:
        iterations: optimisation steps (overrides ``config.iterations``).
        init: ``"lidar"`` (LiDAR points coloured from the images), ``"random"`` (random points in
            the clip's bounds), ``"network"`` (the shipped feed-forward model's output) or
            ``"network+lidar"`` (both together; the network alone when there is no LiDAR).
        holdout_frames, holdout_cameras: held-out views (see :func:`split_views`).
        device: ``"cpu"`` or ``"cuda"``; everything moves there.
        max_gaussians: cap on the Gaussian count (overrides ``config.densify.max_gaussians``);
            the initial points are capped to half of it so densification has room.
        seed: seed of the initial subsampling, the view order and densification.
        downscale: divide the image size by this factor (the first training camera's size).
        num_init_points: at most this many initial Gaussians.
        config: everything else (:class:`OptimConfig`).
        progress: show a progress bar.
        log: called with one-line status messages (e.g. ``print``).
    """
    from splatnet.clip import Clip

    say = log or (lambda _msg: None)
    if isinstance(clip, (str, os.PathLike)):
        clip = Clip.load(clip)
    if init not in INITS:
        raise ValidationError(f"init: expected one of {INITS}, got {init!r}")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise ValidationError(f"iterations: expected a non-negative int, got {iterations!r}")
    if max_gaussians is not None and max_gaussians <= 0:
        raise ValidationError(f"max_gaussians: expected a positive count, got {max_gaussians}")
    if num_init_points <= 0:
        raise ValidationError(f"num_init_points: expected a positive count, got {num_init_points}")
    dev = resolve_device(device)
    cfg = dataclasses.replace(config or OptimConfig(), iterations=iterations, seed=seed)
    cfg.densify = dataclasses.replace(cfg.densify)
    if max_gaussians is not None:
        cfg.densify.max_gaussians = max_gaussians
    cap = cfg.densify.max_gaussians
    n_init = num_init_points if cap is None else max(1, min(num_init_points, cap // 2))

    t0 = time.perf_counter()
    split = split_views(clip, holdout_frames, holdout_cameras)
    size = image_size(clip, split.train_cameras, downscale)
    train = clip.views(split.train_frames, split.train_cameras, size=size)
    say(f"training on {len(train)} views of {size[0]}x{size[1]}; evaluating on {split.description}")
    generator = torch.Generator().manual_seed(int(seed))
    if init == "lidar":
        start = init_mod.init_lidar(clip, split.train_frames, train, n_init, cfg.sh_degree, generator)
    elif init == "random":
        start = init_mod.init_random(clip, split.train_frames, train, n_init, cfg.sh_degree, generator)
    elif init == "network":
        start = init_mod.init_network(clip, train, cfg.sh_degree)
    else:
        start = init_mod.init_network_lidar(clip, split.train_frames, train, n_init, cfg.sh_degree,
                                            generator)
    init_seconds = time.perf_counter() - t0
    say(f"initialised {start.num_gaussians} Gaussians from {init} in {init_seconds:.1f} s")

    result = fit(start.to(dev), train, cfg, progress=progress)
    say(f"optimised {iterations} steps in {result.seconds:.1f} s with the {result.backend!r} "
        f"renderer: {result.gaussians.num_gaussians} Gaussians")

    if split.has_holdout:
        held = clip.views(split.eval_frames, split.eval_cameras, size=size)
    else:
        held = train
    scores = evaluate(result.gaussians, held, background=cfg.background,
                      antialiased=cfg.antialiased, backend=cfg.backend)
    scores["views"] = len(held)
    scores["held_out"] = split.has_holdout
    return OptimResult(result.gaussians, scores, split, init_seconds, result, start.num_gaussians)


def optimize(clip, **kwargs: Any) -> Gaussians:
    """Optimise Gaussians for ``clip``; see :func:`optimize_clip` for the arguments (this returns
    only the Gaussians)."""
    return optimize_clip(clip, **kwargs).gaussians
