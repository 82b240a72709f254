"""Held-out evaluation of feed-forward reconstruction: reconstruct from context views, score the
views the network never saw (PSNR, SSIM, LPIPS when given local weights, depth error against
LiDAR), with timings.

The split is the one per-scene optimisation uses (:func:`splatnet.clip.split.split_views`):
held-out frames (every rig camera at those frames), held-out cameras (those cameras at every
frame), or by default the clip's ``target`` cameras when it has them (extra cameras off the rig,
recorded for exactly this), else its middle frame, so both methods are scored on the same views.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from splatnet.cameras import project_points
from splatnet.errors import ValidationError
from splatnet.metrics.lpips import LPIPS

LPIPS_SKIPPED = ("no weights given; pass --lpips-weights BACKBONE,LINEAR (e.g. torchvision's "
                 "alexnet-owt-7be5be79.pth and the lpips package's weights/v0.1/alex.pth), or "
                 "lpips=LPIPS.from_files(...) to evaluate_clip; nothing is downloaded")


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


def evaluate_clip(clip, model: nn.Module, *, holdout_frames: Sequence[int] | None = None,
                  holdout_cameras: Sequence[str] | None = None,
                  size: tuple[int, int] | None = None,
                  device: str | torch.device | None = None, backend: str = "auto",
                  lpips: LPIPS | None = None,
                  progress: Callable[[str], None] | None = None) -> dict:
    """Reconstruct ``clip`` from its context views and score the held-out ones.

    Returns a JSON-ready dict: the split, PSNR / SSIM (mean and per view), LPIPS (mean and per
    view with ``lpips``, a :class:`splatnet.metrics.lpips.LPIPS` built from local weights; otherwise
    ``{"skipped": why}``), depth errors against LiDAR (where present), the Gaussian count and
    timings. ``progress``, when given, is called with each stage's name as it starts:
    ``"decode context views"``, ``"network + post-process"``,
    ``"render and score held-out views"``.
    """
    from splatnet import metrics
    from splatnet.clip.split import split_views
    from splatnet.device import resolve_device
    from splatnet.pipeline.feedforward import prepare_inputs, run_network
    from splatnet.rendering import render

    def stage(name: str) -> None:
        if progress is not None:
            progress(name)

    dev = resolve_device(device)
    split = split_views(clip, holdout_frames, holdout_cameras)
    if not split.has_holdout:
        raise ValidationError(f"{clip.path}: {split.description}; pass --holdout-cameras NAMES")
    stride = int(getattr(model, "stride", 1))
    stage("decode context views")
    inputs = prepare_inputs(clip, stride, frames=split.train_frames,
                            cameras=split.train_cameras, size=size)
    if lpips is not None:  # before the network runs
        lpips.check_size(*inputs.size, hint=" (pass a larger --size)")
    stage("network + post-process")
    rec = run_network(inputs, model, dev)
    stage("render and score held-out views")
    h, w = rec.size
    t0 = time.perf_counter()
    held = clip.views(frames=split.eval_frames, cameras=split.eval_cameras, size=(h, w))
    rec.timings["load_holdout"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    lpips_time = 0.0
    lpips_device = next(lpips.parameters()).device if lpips is not None else None
    g = rec.gaussians
    per_view = []
    preds, alphas, depths = [], [], []
    with torch.no_grad():
        for v in range(len(held)):
            cam = held.cameras[[v]].to(dev)
            out = render(g, cam, backend=backend)
            rgb = out.rgb
            if rec.sky is not None:
                sky = rec.sky.render(_batched(cam))[0]
                rgb = rgb + (1.0 - out.alpha) * sky.to(rgb)
            pred = rgb[0].clamp(0, 1).cpu()
            gt = held.images[v]
            per_view.append({"frame": int(held.frame_ids[v]), "camera": held.camera_names[v],
                             "psnr": float(metrics.psnr(pred, gt)),
                             "ssim": float(metrics.ssim(pred, gt))})
            if lpips is not None:
                t1 = time.perf_counter()
                per_view[-1]["lpips"] = float(lpips(pred.to(lpips_device), gt.to(lpips_device)))
                lpips_time += time.perf_counter() - t1
            preds.append(pred)
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
        "gaussians": g.num_gaussians,
        "psnr": sum(r["psnr"] for r in per_view) / len(per_view),
        "ssim": sum(r["ssim"] for r in per_view) / len(per_view),
        "lpips": ({"mean": sum(r["lpips"] for r in per_view) / len(per_view), "net": lpips.net,
                   "weights": list(lpips.sources)} if lpips is not None
                  else {"skipped": LPIPS_SKIPPED}),
        "per_view": per_view,
    }
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
    report["timings"] = {k: round(v, 4) for k, v in rec.timings.items()}
    return report


def _batched(cameras):
    from splatnet.cameras import Cameras

    return Cameras(cameras.K[None], cameras.cam_to_world[None], cameras.width, cameras.height,
                   check=False)
