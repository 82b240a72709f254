"""Held-out evaluation of feed-forward reconstruction: reconstruct from context views, score the
views the network never saw (PSNR, SSIM, LPIPS when given local weights, depth error against
LiDAR), with timings; next to them a floor (the nearest context image copied as the prediction)
and the input views rendered back (how well the Gaussians reproduce what the network saw).

The split is the one per-scene optimisation uses (:func:`splatnet.clip.split.split_views`):
held-out frames (every rig camera at those frames), held-out cameras (those cameras at every
frame), or by default the clip's ``target`` cameras when it has them (extra cameras off the rig,
recorded for exactly this), else its middle frame, so both methods are scored on the same views.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from splatnet.cameras import project_points
from splatnet.errors import ValidationError
from splatnet.metrics.lpips import LPIPS

LPIPS_SKIPPED = ("no weights given; pass --lpips-weights BACKBONE,LINEAR (e.g. torchvision's "
                 "alexnet-owt-7be5be79.pth and the lpips package's weights/v0.1/alex.pth), or "
                 "lpips=LPIPS.from_files(...) to evaluate_clip; nothing is downloaded")

#: Frame-time gaps closer than this count as equal in :func:`nearest_context_views` (nominally
#: equal spacing stored as float seconds).
TIE_SECONDS = 1e-6


def depth_errors(pred_depth: torch.Tensor, alpha: torch.Tensor, cameras, points: torch.Tensor
                 ) -> dict[str, float] | None:
    """Rendered expected depth vs LiDAR points projected into the views.

    ``pred_depth, alpha [V, H, W, 1]``, ``cameras`` V cameras, ``points [M, 3]`` world. Counts
    pixels a point lands on where the render is solid (alpha > 0.5). Returns absolute relative
    error, RMSE (metres) and the number of points used, or None when no point lands.
    """
    uv, z_all = project_points(points.to(torch.float64), cameras.K.to(torch.float64),
                               cameras.world_to_cam.to(torch.float64))  # [V, M, 2], [V, M]
    rel, sq, count = 0.0, 0.0, 0
    for v in range(cameras.num_cameras):
        keep = z_all[v] > 0.1
        u = uv[v, keep, 0].floor().long()
        vv = uv[v, keep, 1].floor().long()
        z = z_all[v, keep]
        inside = (u >= 0) & (u < cameras.width) & (vv >= 0) & (vv < cameras.height)
        u, vv, z = u[inside], vv[inside], z[inside]
        d = pred_depth[v, vv, u, 0].to(torch.float64)
        solid = alpha[v, vv, u, 0] > 0.5
        d, z = d[solid], z[solid]
        rel += float(((d - z).abs() / z).sum())
        sq += float(((d - z) ** 2).sum())
        count += int(z.numel())
    if count == 0:
        return None
    return {"abs_rel": rel / count, "rmse_m": (sq / count) ** 0.5, "points": count}


def nearest_context_views(clip, split) -> list[tuple[int, str]]:
    """For each held-out view of ``split`` (frame-major: ``eval_frames`` × ``eval_cameras``), the
    context image ``(frame, camera)`` that stands in for it in the "nearest context frame" floor.

    The frame is the context frame nearest in time to the held-out frame (frame timestamps; a tie,
    within :data:`TIE_SECONDS`, goes to the earlier frame). The camera is the same camera when it
    is a context camera; else (a target camera off the rig, or a held-out rig camera) the context
    camera whose centre is nearest the held-out camera's centre, both at that context frame (a
    tie goes to the first context camera).
    """
    import numpy as np

    if not split.train_frames or not split.train_cameras:
        raise ValidationError("nearest context views: the split has no context views")
    times = clip.timestamps.tolist()
    out = []
    for f in split.eval_frames:
        gap = {c: abs(times[c] - times[f]) for c in split.train_frames}
        best = min(gap.values())
        g = min((c for c in split.train_frames if gap[c] <= best + TIE_SECONDS),
                key=lambda c: (times[c], c))
        for cam in split.eval_cameras:
            if cam in split.train_cameras:
                out.append((g, cam))
                continue
            centre = clip.cam_to_world(g, cam)[:3, 3]
            dist = [float(np.linalg.norm(clip.cam_to_world(g, c)[:3, 3] - centre))
                    for c in split.train_cameras]
            out.append((g, split.train_cameras[int(np.argmin(dist))]))
    return out


@torch.no_grad()
def _render_view(g, sky, camera, backend: str, colour=None, ego=None, name=None, upsample=None,
                 detail=None):
    """Render one camera (unbatched, C = 1, on the Gaussians' device) with the network's sky
    composited as ``rgb + (1 − alpha) · sky``: ``(pred [H, W, 3] clamped, on the CPU;
    RenderOutput)``. Held-out, context and variant views all go through here. With ``colour``
    (the network's per-camera :class:`~splatnet.models.colour.ColourAffine`), a context camera's
    render goes through its colour matrix, as in training; any other camera's is left as it is
    (the identity: its exposure is unknown). With ``upsample`` (``Reconstruction.
    upsample_filter``), the network's Gaussians are widened for a camera that samples the scene
    more finely than its input views did (``name``: which rig camera it is). Then
    :func:`_finish_view` (``detail``, ``ego``)."""
    rgb, out = _render_plain(g, sky, camera, backend, colour, name, upsample)
    return _finish_view(rgb, out, camera, name, ego, detail), out


@torch.no_grad()
def _render_plain(g, sky, camera, backend: str, colour=None, name=None, upsample=None):
    """:func:`_render_view` up to the clamp: the Gaussians, sky and colour alone."""
    from splatnet.losses import apply_colour
    from splatnet.rendering import render

    if upsample is not None:
        g = upsample.widen(g, camera, name)
    out = render(g, camera, backend=backend)
    rgb = out.rgb
    if sky is not None:
        bg = sky.render(_batched(camera))[0]
        rgb = rgb + (1.0 - out.alpha) * bg.to(rgb)
    if colour is not None:
        mats = colour.for_cameras(_batched(camera, names=True))[0].to(rgb)  # [1, 3, 4]
        rgb = apply_colour(rgb.movedim(-1, -3), mats).movedim(-3, -1)
    return rgb[0].clamp(0, 1).cpu(), out


@torch.no_grad()
def _finish_view(rgb, out, camera, name, ego=None, detail=None):
    """A clamped render ``rgb [H, W, 3]`` (CPU) of one camera with, when given, the ``detail``
    layer's detail added (:class:`~splatnet.scene.layers.DetailLayer`: ``name`` the rig camera
    it is) and then the ``ego`` layer's view of the ego itself drawn over it (``ego.covers(name)``:
    from its context frame nearest in time)."""
    stamps = camera.timestamps
    t = None if stamps is None else float(stamps.reshape(-1)[0])
    if detail is not None:
        rgb = detail.apply(rgb, out.alpha[0].cpu(), out.depth[0].cpu(), camera.to("cpu"), name, t)
    if ego is not None and ego.covers(name):
        rgb = ego.composite(rgb, name, t)
    return rgb


def _mean(rows: list[dict], key: str) -> float:
    return sum(r[key] for r in rows) / len(rows)


def evaluate_clip(clip, model: nn.Module, *, holdout_frames: Sequence[int] | None = None,
                  holdout_cameras: Sequence[str] | None = None,
                  size: tuple[int, int] | None = None,
                  device: str | torch.device | None = None, backend: str = "auto",
                  lpips: LPIPS | None = None,
                  progress: Callable[[str], None] | None = None,
                  variants: Mapping[str, Callable] | None = None,
                  network_size: tuple[int, int] | None = None,
                  use_lidar: bool = True, ego_masks: str = "auto", use_detail: bool = True) -> dict:
    """Reconstruct ``clip`` from its context views and score the held-out ones.

    ``size`` is the size views are rendered and scored at (default: native, rounded down to the
    network's stride); ``network_size`` the size the network runs at (default:
    :func:`splatnet.pipeline.feedforward.network_size` of ``size``: the model's working size when
    ``size`` is larger). The Gaussians do not depend on a resolution, so the two may differ.
    ``use_lidar=False`` withholds the clip's LiDAR from the network (the report's ``lidar`` and
    ``lidar_fusion`` say what it was given and whether its Gaussians were moved to the LiDAR's
    depth); the depth-vs-LiDAR errors still use the held-out frames' sweeps.

    Returns a JSON-ready dict: the split, PSNR / SSIM (mean and per view), LPIPS (mean and per
    view with ``lpips``, a :class:`splatnet.metrics.lpips.LPIPS` built from local weights; otherwise
    ``{"skipped": why}``), depth errors against LiDAR (where present), the Gaussian count and
    timings. Beside the network's scores:

    - ``nearest_context``: a floor, PSNR / SSIM of the nearest context image (see
      :func:`nearest_context_views`, at the same size) scored against each held-out image, as if
      copied as the prediction; per view under ``per_view[i]["nearest_context"]``.
    - ``context_views``: the Gaussians rendered back into every context view (the network's sky
      as background, exactly as the held-out views, without the detail layer) and scored against
      the input images: mean PSNR / SSIM and ``per_view``.
    - ``gaussians_only`` (with a detail layer): the held-out views rendered without it; per
      view under ``per_view[i]["gaussians_only"]``.

    With the model's ``detail_layer`` on (and ``use_detail``), the held-out renders take the
    detail of the context images that the Gaussians miss (:class:`~splatnet.scene.layers.
    DetailLayer`, made from the context views rendered back at the scoring size), as a scene's
    renders do; ``detail`` in the report says what it held, None when off.

    ``variants``, when given, maps a name to ``f(gaussians, context_views, backgrounds) ->
    Gaussians``, other Gaussians made from the network's (e.g. a few refinement steps with
    :func:`splatnet.optimization.refine`; ``context_views`` are the decoded context views at the
    scoring size, ``backgrounds [V, H, W, 3]`` the network's sky in them, or None); each is scored
    on the held-out views as the network's, without colour matrices, upsample filter or detail
    layer (as a refined scene is rendered), and reported under ``variants[name]`` (PSNR, SSIM,
    per view, Gaussian count, seconds).

    ``progress``, when given, is called with each stage's name as it starts:
    ``"decode context views"``, ``"network + post-process"``, ``"render context views"``,
    ``"render and score held-out views"``, and ``"variants"`` when there are any.
    """
    from splatnet import metrics
    from splatnet.clip.split import split_views
    from splatnet.device import resolve_device
    from splatnet.pipeline.feedforward import (
        default_size,
        enabled_option,
        prepare_inputs,
        run_network,
    )
    from splatnet.pipeline.feedforward import network_size as choose_network_size

    def stage(name: str) -> None:
        if progress is not None:
            progress(name)

    dev = resolve_device(device)
    split = split_views(clip, holdout_frames, holdout_cameras)
    if not split.has_holdout:
        raise ValidationError(f"{clip.path}: {split.description}; pass --holdout-cameras NAMES")
    stride = int(getattr(model, "stride", 1))
    stage("decode context views")
    h, w = size if size is not None else default_size(clip, split.train_cameras, stride)
    if network_size is None:
        network_size = choose_network_size(model, (h, w))
    inputs = prepare_inputs(clip, stride, frames=split.train_frames,
                            cameras=split.train_cameras, size=network_size, use_lidar=use_lidar,
                            ego_masks=ego_masks)
    lidar_given = inputs.lidar is not None  # (inputs is decoded again below, without LiDAR)
    if lpips is not None:  # before the network runs
        lpips.check_size(h, w, hint=" (pass a larger --size)")
    stage("network + post-process")
    rec = run_network(inputs, model, dev)
    stage("render and score held-out views")
    t0 = time.perf_counter()
    held = clip.views(frames=split.eval_frames, cameras=split.eval_cameras, size=(h, w))
    rec.timings["load_holdout"] = time.perf_counter() - t0

    # The context images at the scoring size ([V, H, W, 3], frame-major) and their cameras: as
    # the network saw them, or decoded again when the network ran at another size.
    if (h, w) != tuple(inputs.size):
        inputs = prepare_inputs(clip, 1, frames=split.train_frames, cameras=split.train_cameras,
                                size=(h, w), use_lidar=False)
    context_images = inputs.images[0].permute(0, 2, 3, 1)
    context_cams = inputs.view_cameras()
    n_cams = len(inputs.camera_names)

    def context_index(frame: int, camera: str) -> int:
        return inputs.frames.index(frame) * n_cams + inputs.camera_names.index(camera)

    g = rec.gaussians
    ego = rec.ego
    estimated = ego is not None and ego.estimated

    # The context views rendered back (the Gaussians alone: with the detail layer they would be
    # the input images), and from them the detail layer of the held-out renders.
    stage("render context views")
    t0 = time.perf_counter()
    context_rows, context_renders, context_depths = [], [], []
    for v in range(context_cams.num_cameras):
        pred, out = _render_view(g, rec.sky, context_cams[[v]].to(dev), backend, rec.colour, ego,
                                 inputs.camera_names[v % n_cams], rec.upsample_filter)
        gt = context_images[v]
        # The clip's own masks mark what is scored; estimated ones do not (every pixel counts).
        m = None if inputs.valid is None or estimated else inputs.valid[0, v].permute(1, 2, 0)
        context_rows.append({"frame": inputs.frames[v // n_cams],
                             "camera": inputs.camera_names[v % n_cams],
                             "psnr": float(metrics.psnr(pred, gt, mask=m)),
                             "ssim": float(metrics.ssim(pred, gt, mask=m))})
        context_renders.append(pred)
        context_depths.append(out.depth[0].cpu())
    detail = None
    detail_cfg = enabled_option(model, "detail_layer") if use_detail else None
    if detail_cfg is not None:
        detail = _detail_of(context_images, torch.stack(context_renders), torch.stack(context_depths),
                            context_cams, inputs.camera_names, ego, detail_cfg)
    rec.timings["render_context"] = time.perf_counter() - t0

    stage("render and score held-out views")
    t0 = time.perf_counter()
    lpips_time = 0.0
    lpips_device = next(lpips.parameters()).device if lpips is not None else None
    nearest = nearest_context_views(clip, split)
    per_view = []
    alphas, depths = [], []
    for v in range(len(held)):
        name = held.camera_names[v]
        cam = held.cameras[[v]].to(dev)
        plain, out = _render_plain(g, rec.sky, cam, backend, rec.colour, name, rec.upsample_filter)
        pred = _finish_view(plain, out, cam, name, ego, detail)
        gt = held.images[v]
        m = None if held.masks is None else held.masks[v]  # the camera's valid pixels
        nf, nc = nearest[v]
        near = context_images[context_index(nf, nc)]
        per_view.append({"frame": int(held.frame_ids[v]), "camera": name,
                         "psnr": float(metrics.psnr(pred, gt, mask=m)),
                         "ssim": float(metrics.ssim(pred, gt, mask=m)),
                         "nearest_context": {"frame": nf, "camera": nc,
                                             "psnr": float(metrics.psnr(near, gt, mask=m)),
                                             "ssim": float(metrics.ssim(near, gt, mask=m))}})
        if detail is not None:  # the same render without the detail layer
            alone = _finish_view(plain, out, cam, name, ego)
            per_view[-1]["gaussians_only"] = {"psnr": float(metrics.psnr(alone, gt, mask=m)),
                                              "ssim": float(metrics.ssim(alone, gt, mask=m))}
        if estimated:  # the same, on the pixels that are not the ego's (all, for other cameras)
            keep = ~ego.mask(name, (h, w))[..., None] if ego.covers(name) else None
            per_view[-1]["scene"] = {
                "psnr": float(metrics.psnr(pred, gt, mask=keep)),
                "ssim": float(metrics.ssim(pred, gt, mask=keep)),
                "nearest_context": {"psnr": float(metrics.psnr(near, gt, mask=keep)),
                                    "ssim": float(metrics.ssim(near, gt, mask=keep))}}
        if lpips is not None:
            t1 = time.perf_counter()
            with torch.no_grad():
                per_view[-1]["lpips"] = float(lpips(pred.to(lpips_device), gt.to(lpips_device)))
            lpips_time += time.perf_counter() - t1
        alphas.append(out.alpha[0].cpu())
        depths.append(out.depth[0].cpu())
    rec.timings["render_and_score"] = time.perf_counter() - t0 - lpips_time
    if lpips is not None:
        rec.timings["lpips"] = lpips_time

    report: dict = {
        "clip": str(clip.path),
        "split": {"description": split.description, "context_frames": split.train_frames,
                  "context_cameras": split.train_cameras, "holdout_frames": split.eval_frames,
                  "holdout_cameras": split.eval_cameras},
        "size": [h, w],
        "network_size": list(rec.size),
        # Scores count only the pixels the clip's camera masks mark valid (the ego's own hood
        # is not part of the scene); False when the clip has no masks: every pixel counts.
        "masked": held.masks is not None,
        # What the network was given: the context frames' LiDAR (as sparse depth, and as the
        # depth its Gaussians were moved to when the model has lidar_fusion on).
        "lidar": lidar_given,
        "lidar_fusion": rec.lidar_fused,
        # Each context camera's gain and offset per channel were fitted to its context images
        # (model.colour_fit): renders of those cameras go through them, other cameras' do not.
        "colour_fit": rec.colour_fitted,
        # Renders larger than the network's input views widen its Gaussians (model.
        # upsample_filter): the blur's sigma in network pixels, or None.
        "upsample_filter": None if rec.upsample_filter is None else rec.upsample_filter.sigma,
        # Where the rig's cameras see the ego itself: from the clip's masks or estimated
        # (camera → fraction of its pixels); None when neither.
        "ego": None if ego is None else ego.summary(),
        # The context images' detail that the Gaussians miss, added to the held-out renders
        # (model.detail_layer): views, cameras, size and settings; None when off.
        "detail": None if detail is None else detail.summary(),
        "gaussians": g.num_gaussians,
        "psnr": _mean(per_view, "psnr"),
        "ssim": _mean(per_view, "ssim"),
        "lpips": ({"mean": _mean(per_view, "lpips"), "net": lpips.net,
                   "weights": list(lpips.sources)} if lpips is not None
                  else {"skipped": LPIPS_SKIPPED}),
        "nearest_context": {
            "psnr": _mean([r["nearest_context"] for r in per_view], "psnr"),
            "ssim": _mean([r["nearest_context"] for r in per_view], "ssim"),
            "rule": "per held-out view, the context image of the same camera (else the context "
                    "camera nearest in position) at the context frame nearest in time"},
        "context_views": {"psnr": _mean(context_rows, "psnr"), "ssim": _mean(context_rows, "ssim"),
                          "views": len(context_rows), "per_view": context_rows,
                          "rule": "the Gaussians rendered back, without the detail layer"},
        "per_view": per_view,
    }
    if detail is not None:
        alone = [r["gaussians_only"] for r in per_view]
        report["gaussians_only"] = {"psnr": _mean(alone, "psnr"), "ssim": _mean(alone, "ssim"),
                                    "rule": "the held-out views without the detail layer"}
    if estimated:
        scene = [r["scene"] for r in per_view]
        report["scene"] = {
            "psnr": _mean(scene, "psnr"), "ssim": _mean(scene, "ssim"),
            "nearest_context": {"psnr": _mean([r["nearest_context"] for r in scene], "psnr"),
                                "ssim": _mean([r["nearest_context"] for r in scene], "ssim")},
            "rule": "held-out pixels that are not the ego's body by the estimated masks"}
    if clip.has_lidar:
        alpha_all, depth_all = torch.stack(alphas), torch.stack(depths)
        errs = []
        for f in sorted(set(split.eval_frames)):
            pts = clip.lidar(f)
            idx = [i for i, fr in enumerate(held.frame_ids.tolist()) if fr == f]
            if pts is None or not idx:
                continue
            e = depth_errors(depth_all[idx], alpha_all[idx], held.cameras[idx], pts)
            if e is not None:
                errs.append(e)
        if errs:
            n = sum(e["points"] for e in errs)
            report["depth_vs_lidar"] = {
                "abs_rel": sum(e["abs_rel"] * e["points"] for e in errs) / n,
                "rmse_m": (sum(e["rmse_m"] ** 2 * e["points"] for e in errs) / n) ** 0.5,
                "points": n}
    if variants:
        stage("variants")
        report["variants"] = _score_variants(variants, clip, split, rec, context_cams, held, dev,
                                             backend)
    report["timings"] = {k: round(v, 4) for k, v in rec.timings.items()}
    return report


def _score_variants(variants: Mapping[str, Callable], clip, split, rec, context_cams, held, dev,
                    backend: str) -> dict:
    """Each variant's Gaussians (made from the network's) scored on the held-out views."""
    from splatnet import metrics

    h, w = context_cams.height, context_cams.width  # the scoring size
    views = clip.views(frames=split.train_frames, cameras=split.train_cameras, size=(h, w))
    if rec.ego is not None:  # refine on the scene's pixels only
        views = rec.ego.mask_views(views)
    backgrounds = None
    if rec.sky is not None:  # as `splatnet reconstruct --refine`: the network's sky, not black
        with torch.no_grad():
            backgrounds = rec.sky.render(_batched(context_cams).to(dev))[0].to(views.images)
    out = {}
    for name, make in variants.items():
        t0 = time.perf_counter()
        g = make(rec.gaussians, views, backgrounds)
        seconds = time.perf_counter() - t0
        rows = []
        for v in range(len(held)):
            # (no colour matrices, upsample filter or detail layer, as a refined scene: a
            # variant's Gaussians were fitted to the views' own colours at the scoring size)
            pred, _ = _render_view(g, rec.sky, held.cameras[[v]].to(dev), backend, None, rec.ego,
                                   held.camera_names[v])
            gt = held.images[v]
            rows.append({"frame": int(held.frame_ids[v]), "camera": held.camera_names[v],
                         "psnr": float(metrics.psnr(pred, gt)),
                         "ssim": float(metrics.ssim(pred, gt))})
        out[name] = {"psnr": _mean(rows, "psnr"), "ssim": _mean(rows, "ssim"),
                     "gaussians": g.num_gaussians, "seconds": round(seconds, 4), "per_view": rows}
    return out


def _detail_of(images, renders, depths, cameras, names, ego, cfg):
    """The :class:`~splatnet.scene.layers.DetailLayer` of context views (``images``,
    ``renders`` ``[V, H, W, 3]``, ``depths`` ``[V, H, W, 1]``, unbatched ``cameras`` ``[V]``,
    their rig camera ``names`` cycling frame-major), with no detail on the ``ego``'s body."""
    from splatnet.scene.layers import DetailLayer

    names = [names[v % len(names)] for v in range(len(images))]
    return DetailLayer.from_renders(images, renders, depths, cameras, names, ego=ego,
                                    tolerance=cfg.tolerance, min_alpha=cfg.min_alpha)


def _batched(cameras, names: bool = False):
    from splatnet.cameras import Cameras

    return Cameras(cameras.K[None], cameras.cam_to_world[None], cameras.width, cameras.height,
                   names=cameras.names if names else None, check=False)
