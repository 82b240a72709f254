"""Refinement of a 4D :class:`~splatnet.scene.Scene`: a few photometric optimisation steps on posed
views, with each actor's Gaussians trained in its **box frame** and carried along its fixed track.

The objective and optimiser are :func:`~splatnet.optimization.fit.refine`'s: one view per step in
a seeded random order, ``(1 − λ) L1 + λ (1 − SSIM)``, Adam with the reference per-parameter
learning rates (the position rate × scene extent, decaying 100× over the run), every SH band
active, no densification (each group keeps its Gaussian count). What differs is what a view sees:
the scene's own composition at the view's time (:meth:`Scene.gaussians_at`): the background
(advanced by its velocities when dynamic) and every actor present at that time, its box-frame
Gaussians moved by its track pose. The transform is differentiable, so a pixel of a car seen at
frame 0 and one seen at frame 2 both pull on the same box-frame Gaussians; the tracks are not
trained, so the motion stays what the tracks say. The sky is fixed: each view's sky image is
rendered once and composited as ``rgb + (1 − alpha) · sky``, as :meth:`Scene.render` does.
"""

from __future__ import annotations

import dataclasses
import time

import torch
from torch import Tensor

from splatnet.errors import ValidationError
from splatnet.optimization.fit import (
    OptimConfig,
    _check_views,
    _loss,
    _position_lr,
    resolve_backend,
    scene_extent,
)
from splatnet.optimization.params import GaussianParams
from splatnet.scene.scene import camera_times


def refine_scene(scene, views, steps: int, *, config: OptimConfig | None = None, seed: int = 0,
                 progress: bool = False):
    """Run ``steps`` optimisation steps on ``scene``'s Gaussians against ``views``.

    Args:
        scene: a :class:`~splatnet.scene.Scene` (e.g. :func:`splatnet.reconstruct_scene`'s).
        views: an object with ``.cameras`` (unbatched :class:`~splatnet.Cameras` ``[V]`` in the
            scene's world frame, with ``timestamps`` in seconds on the scene clock), ``.images``
            ``[V, H, W, 3]`` in ``[0, 1]`` and optionally ``.masks`` ``[V, H, W, 1]`` (invalid
            pixels count as exact; without masks, the scene's :attr:`~splatnet.scene.Scene.ego`
            layer gives them), e.g. ``Clip.views()`` of the scene's source clip.
        steps: optimisation steps (one view each); 0 returns the scene's Gaussians as
            :func:`refine` would (unit quaternions, opacities clamped into ``[1e-4, 1 − 1e-4]``).
        config: optimiser settings (default: :func:`refine`'s: the reference learning rates, all
            SH bands from the first step); ``iterations`` is replaced by ``steps``, ``sh_degree``
            is each group's own, and densification must be off. Without a sky, the views'
            background is ``config.background`` (black by default, as :meth:`Scene.render`).
        seed: seed of the view order (when ``config`` is not given).
        progress: show a progress bar.

    Returns:
        A new scene with the refined background and actor groups (each in its box frame, same
        counts and SH degrees) and the same tracks, rig, frame times, ego poses and sky (the very
        same objects), without colour matrices (:attr:`Scene.colour`: the refined Gaussians
        carry the views' own colours) and without the upsample filter (they were fitted at the
        views' size) and without the detail layer (:attr:`Scene.detail`: it held what the
        unrefined Gaussians missed; :meth:`Scene.with_detail` makes one of the refined scene);
        ``metadata["refine"]`` records the steps, views and seconds. The input scene is not
        modified. Runs on the scene's device.
    """
    from splatnet.scene import Scene

    if not isinstance(scene, Scene):
        raise ValidationError(f"scene: expected a splatnet.scene.Scene, got {type(scene).__name__}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValidationError(f"steps: expected a non-negative int, got {steps!r}")
    if config is None:
        config = OptimConfig(sh_interval=0, seed=seed)
        config.densify.enabled = False
    if not isinstance(config, OptimConfig):
        raise ValidationError(f"config: expected a splatnet.optimization.OptimConfig, got "
                              f"{type(config).__name__}")
    if config.densify.enabled:
        raise ValidationError("config.densify: refine_scene keeps every group's Gaussian count; "
                              "set densify.enabled = False")
    cfg = dataclasses.replace(config, iterations=steps)
    cfg.check()

    device = scene.device
    cams, images, masks = _check_views(views)
    if masks is None and scene.ego is not None and cams.names:
        # The ego's body is not the scene's: its pixels are left out, as the network's were.
        masks = scene.ego.validity(cams.names, (cams.height, cams.width))
    times = camera_times(cams, "views.cameras")
    from splatnet import metrics

    if cfg.ssim_weight > 0 and min(cams.width, cams.height) < metrics.SSIM_WINDOW:
        raise ValidationError(f"views: images of {cams.height}x{cams.width} (HxW) are too small for the "
                              f"SSIM loss (need at least {metrics.SSIM_WINDOW} pixels a side)")
    cams = cams.to(device)
    images = images.to(device, torch.float32)
    masks = None if masks is None else masks.to(device)
    backend = resolve_backend(cfg.backend, device, scene.background.dtype)
    extent = cfg.scene_extent if cfg.scene_extent is not None else scene_extent(
        cams, scene.background.means)
    lrs = cfg.learning_rates(extent)
    actors = list(scene.actors.values())
    # One parameter set per group; an actor's in its box frame (metres, like the world, so the
    # world's learning rates fit it).
    groups = [GaussianParams(scene.background, lrs, scene.background.sh_degree)]
    groups += [GaussianParams(a.gaussians, lrs, a.gaussians.sh_degree) for a in actors]
    skies = _sky_images(scene, cams, images)
    background = torch.tensor(cfg.background, dtype=torch.float32, device=device)
    single = [cams[[v]] for v in range(cams.num_cameras)]
    generator = torch.Generator().manual_seed(int(cfg.seed))

    def current():
        # The scene itself composes the world at a time: the same code that renders it.
        return scene.replace(background=groups[0].gaussians(),
                             actors=[a.replace(gaussians=p.gaussians())
                                     for a, p in zip(actors, groups[1:])])

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, desc="refine scene", unit="step", dynamic_ncols=True)
    from splatnet.rendering import render

    order: list[int] = []
    start = time.perf_counter()
    for step in range(1, steps + 1):
        if not order:
            order = torch.randperm(cams.num_cameras, generator=generator).tolist()
        v = order.pop()
        lr = _position_lr(step - 1, steps, lrs["means"], cfg.lr_means_final * extent)
        for p in groups:
            p.set_lr("means", lr)
        world = current().gaussians_at(float(times[v]))
        out = render(world, single[v], background=background if skies is None else None,
                     antialiased=cfg.antialiased, backend=backend)
        pred = out.rgb[0] if skies is None else out.rgb[0] + (1.0 - out.alpha[0]) * skies[v]
        loss = _loss(pred, images[v], None if masks is None else masks[v], cfg.ssim_weight)
        for p in groups:
            p.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for p in groups:  # an actor absent at this time has no gradient: Adam skips it
            p.optimizer.step()
        if bar is not None:
            bar.update(1)
            if step % 25 == 0:
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    if bar is not None:
        bar.close()
    meta = dict(scene.metadata)
    meta["refine"] = {"steps": steps, "views": cams.num_cameras, "seconds": round(seconds, 4)}
    meta.pop("colour", None)
    # The refined Gaussians take each view's own colours: the scene's colour matrices, fitted to
    # the unrefined ones, would count the cameras' exposure twice; and they were fitted at the
    # views' size, not the network's, which the upsample filter is for.
    # The detail layer held what the unrefined Gaussians missed in the context views; the refined
    # ones miss less, and what they still miss, carried to new views, lowered the synthetic
    # streets' off-path views (docs/benchmarks.md, "The detail layer"): none is kept.
    return scene.replace(background=groups[0].export(),
                         actors=[a.replace(gaussians=p.export()) for a, p in zip(actors, groups[1:])],
                         colour={}, upsample=None, detail=None, metadata=meta)


@torch.no_grad()
def _sky_images(scene, cams, images: Tensor) -> Tensor | None:
    """``[V, H, W, 3]`` the scene's sky seen by each view (fixed during refinement), or None."""
    if scene.sky is None:
        return None
    from splatnet.cameras import Cameras

    batched = Cameras(cams.K[None], cams.cam_to_world[None], cams.width, cams.height, check=False)
    return scene.sky.render(batched)[0].to(images)
