"""What a detail layer could add: each held-out rig view rendered from the network's Gaussians,
then given the detail its Gaussians miss in the nearest context view of the same camera,
carried over by the rendered depth. A measurement for the real-footage issue; nothing in the
library does this yet (docs/benchmarks.md, "Detail carried over from the context frames").

For a held-out view (camera ``c`` at the held-out time) and its nearest context view (camera
``c`` at the context frame nearest in time), with the reconstruction's renders as
:func:`splatnet.pipeline.evaluate_clip` makes them (sky, colour matrices, ego layer, upsample
filter):

- ``D = I_ctx − R_ctx``: what the Gaussians miss in the context view (the recorded image minus
  their render of it);
- each held-out pixel is lifted to 3D at its rendered depth, projected into the context camera,
  and takes ``D`` there (bilinear) where that point is the context render's own surface (its
  depth within ``--tolerance`` of the context render's depth there) and the held-out pixel is
  covered (rendered alpha above ``--min-alpha``);
- the result ``R_held + D`` (clamped) is scored against the recorded held-out image.

Context views rendered back are not touched (for them this would return the input itself), so
the "input views" figures of the protocol stay what they are. Clips: the real held-out clips of
``feedforward_quality.py`` (same cache and sizes) and, with ``--synthetic``, synthetic clips at
128x224 (``--seeds``, by default its unseen 1000-1003; their rig cameras at the held-out frame,
and apart from them, ``off_rig``, their target cameras there: off the logged path, each given
the context view whose camera looks most its way).

    python benchmarks/detail_transfer.py [--which dgp,pandaset] [--synthetic [--seeds 1000,...]]
        [--tolerance 0.05] [--min-alpha 0.5] [--out benchmarks/results/detail_transfer.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import feedforward_quality as fq  # noqa: E402 - after the path it is found on


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    fq.add_real_clip_args(ap, "30,33,36")
    ap.add_argument("--synthetic", action="store_true",
                    help="also synthetic clips (--seeds) at 128x224")
    ap.add_argument("--seeds", default="1000,1001,1002,1003",
                    help="synthetic seeds (default: the unseen 1000-1003)")
    ap.add_argument("--tolerance", type=float, default=0.05,
                    help="relative depth agreement for a pixel to take the context view's detail")
    ap.add_argument("--min-alpha", type=float, default=0.5,
                    help="rendered alpha a held-out pixel needs (sky pixels take no detail)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "detail_transfer.json"))
    return ap.parse_args(argv)


def carried_detail(pred, out, camera, ctx_image, ctx_pred, ctx_out, ctx_camera, tolerance: float,
                   min_alpha: float):
    """``(pred + D warped, [H, W] bool where it was taken)`` for one held-out view: see the
    module docstring. ``pred``/``ctx_pred`` ``[H, W, 3]`` renders, ``out``/``ctx_out`` their
    ``RenderOutput`` (depth, alpha), ``camera``/``ctx_camera`` unbatched single cameras."""
    import torch
    import torch.nn.functional as F

    from splatnet.cameras import project_points

    h, w = pred.shape[:2]
    depth = out.depth.reshape(h, w).double()
    v, u = torch.meshgrid(torch.arange(h, dtype=torch.float64) + 0.5,
                          torch.arange(w, dtype=torch.float64) + 0.5, indexing="ij")
    pix = torch.stack([u, v, torch.ones_like(u)], -1).reshape(-1, 3)
    K = camera.K.reshape(3, 3).double()
    c2w = camera.cam_to_world.reshape(4, 4).double()
    world = (torch.linalg.solve(K, pix.T).T * depth.reshape(-1, 1)) @ c2w[:3, :3].T + c2w[:3, 3]
    uv, z = project_points(world.float(), ctx_camera.K.reshape(1, 3, 3).float(),
                           ctx_camera.world_to_cam.reshape(1, 4, 4).float())
    uv, z = uv[0].reshape(h, w, 2), z[0].reshape(h, w)
    grid = torch.stack([uv[..., 0] / w * 2 - 1, uv[..., 1] / h * 2 - 1], -1)[None]
    missed = (ctx_image - ctx_pred).permute(2, 0, 1)[None].float()
    carried = F.grid_sample(missed, grid, align_corners=False)[0].permute(1, 2, 0)
    surface = F.grid_sample(ctx_out.depth.reshape(1, 1, h, w).float().cpu(), grid, mode="nearest",
                            align_corners=False)[0, 0]
    take = ((grid[0].abs() < 1).all(-1) & (depth > 0) & ((z - surface).abs() < tolerance * surface)
            & (out.alpha.reshape(h, w).cpu() > min_alpha))
    return (pred + torch.where(take[..., None], carried, torch.zeros_like(carried))).clamp(0, 1), take


def score_clip(clip, model, size, args) -> dict:
    import numpy as np
    import torch

    from splatnet.metrics import psnr, ssim
    from splatnet.pipeline.evaluate import _render_view
    from splatnet.pipeline.feedforward import prepare_inputs, run_network

    inputs = prepare_inputs(clip, 2, frames=[0, 2], size=size)
    rec = run_network(inputs, model)
    held = clip.views(frames=[1], size=size, roles=("rig", "target"))
    ctx = clip.views(frames=[0, 2], size=size)
    rig = set(ctx.camera_names)

    def render(cameras, name):
        return _render_view(rec.gaussians, rec.sky, cameras, "auto", rec.colour, rec.ego, name,
                            rec.upsample_filter)

    rows = []
    with torch.no_grad():
        for v, name in enumerate(held.camera_names):
            cam = held.cameras[[v]]
            t = float(cam.timestamps.reshape(-1)[0])
            if name in rig:  # the same camera, nearest in time
                same = [i for i, c in enumerate(ctx.camera_names) if c == name]
            else:  # a camera off the rig: the context views looking most its way
                fwd = cam.cam_to_world.reshape(4, 4)[:3, 2]
                cos = ctx.cameras.cam_to_world[:, :3, 2] @ fwd
                same = [i for i in range(len(ctx)) if float(cos[i]) >= float(cos.max()) - 1e-3]
            near = min(same, key=lambda i: abs(float(ctx.cameras[[i]].timestamps.reshape(-1)[0]) - t))
            pred, out = render(cam, name)
            ctx_pred, ctx_out = render(ctx.cameras[[near]], ctx.camera_names[near])
            better, take = carried_detail(pred, out, cam, ctx.images[near], ctx_pred, ctx_out,
                                          ctx.cameras[[near]], args.tolerance, args.min_alpha)
            gt = held.images[v]
            rows.append({"camera": name, "rig": name in rig, "context_view": ctx.camera_names[near],
                         "context_frame": int(ctx.frame_ids[near]),
                         "render": [float(psnr(pred, gt)), float(ssim(pred, gt))],
                         "with_detail": [float(psnr(better, gt)), float(ssim(better, gt))],
                         "nearest_frame": [float(psnr(ctx.images[near], gt)),
                                           float(ssim(ctx.images[near], gt))],
                         "pixels_taken": float(take.float().mean())})
    def mean(sel):
        return {k: [float(np.mean([r[k][i] for r in sel])) for i in (0, 1)]
                for k in ("render", "with_detail", "nearest_frame")}

    off = [r for r in rows if not r["rig"]]
    return {"per_view": rows, **mean([r for r in rows if r["rig"]]),
            **({"off_rig": mean(off)} if off else {})}


def main(argv: list[str] | None = None) -> int:
    import torch

    from splatnet.clip import Clip
    from splatnet.io.atomic import atomic_write_text
    from splatnet.io.checkpoint import load_model
    from splatnet.train.data import synthetic_clips

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    model = load_model()
    jobs = [(j["group"], j["name"], j["path"], j["size"]) for j in fq.real_clips_of(args)]
    if args.synthetic:
        seeds = [int(x) for x in args.seeds.split(",")]
        for path in synthetic_clips(seeds, 6, 3, (256, 448), 2,
                                    "~/.cache/splatnet/synthetic"):
            jobs.append(("synthetic", path.name, path, (128, 224)))
    rows = []
    for group, name, path, size in jobs:
        t0 = time.perf_counter()
        res = score_clip(Clip.load(path), model, size, args)
        rows.append({"clip": name, "group": group, "size": list(size), **res,
                     "seconds": time.perf_counter() - t0})
        print(f"{name}: render {res['render'][0]:.2f}, with detail {res['with_detail'][0]:.2f}, "
              f"nearest frame {res['nearest_frame'][0]:.2f}", file=sys.stderr)
    doc = {"started": started, "machine": f"{platform.machine()}, {torch.get_num_threads()} torch "
           f"thread(s), torch {torch.__version__}", "tolerance": args.tolerance,
           "min_alpha": args.min_alpha, "clips": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(doc, indent=1) + "\n")
    print("| clip | rendered (held-out) | + detail from the nearest context view | nearest frame |")
    print("|---|---|---|---|")
    for r in rows:
        for label, d in ((r["clip"], r), (f"{r['clip']} off the rig", r.get("off_rig"))):
            if d is not None:
                print(f"| {label} | " + " | ".join(f"{d[k][0]:.2f} / {d[k][1]:.3f}" for k in
                                                   ("render", "with_detail", "nearest_frame")) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
