"""Why the network cannot reproduce its own input views on real footage: the context views
rendered back, taken apart by which Gaussians are drawn, with pictures.

For each clip the network runs once on the context views (its raw per-pixel Gaussians, no
post-processing, so every Gaussian still knows the view it came from). Each context view is then
rendered, with the network's sky behind, from:

- ``own``: only the Gaussians predicted from that view;
- ``same frame``: the Gaussians of every camera at that view's frame;
- ``same camera``: the Gaussians of that camera at every context frame;
- ``all``: every Gaussian (what ``splatnet eval``'s ``context_views`` scores, before
  post-processing);

and the same four with every opacity raised to at least 0.9 (``opa>=0.9``). Beside them, a
resolution ceiling: the image averaged over the network's ``stride x stride`` cells and
upsampled again (bilinear), i.e. how well one colour per Gaussian cell could do without any
sub-cell detail. ``worst pairs`` lists the source views whose Gaussians cost another view the most
(PSNR of that view's ``own`` render minus its render with the source's Gaussians added).

Reading: ``own`` far under the ceiling means the per-view predictions (opacity, scale, colour)
lose detail; ``all`` under ``own`` means other views' Gaussians land in front of a view's own
surfaces (depth inconsistent across views, or things that move with the ego such as its hood).

    python benchmarks/input_views.py [--checkpoint PATH] [--which dgp,pandaset]
        [--pandaset-windows 30] [--out-dir benchmarks/results]

Writes ``input_views.json`` and one picture per clip, ``input_views_<clip>.jpg`` (rows: the first
``--picture-views`` context views; columns: input, own, all, all with opa>=0.9, rendered depth of
all, near dark), into ``--out-dir``.
Uses the real clips of ``benchmarks/feedforward_quality.py`` (same sizes, same cache).
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

SUBSETS = ("own", "same frame", "same camera", "all")
OPACITY_FLOOR = 0.9


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=None, help="model (default: the shipped one)")
    fq.add_real_clip_args(ap, "30")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--picture-views", type=int, default=6,
                    help="context views in each picture (default 6: the first frame)")
    ap.add_argument("--out-dir", default=str(REPO / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    args.which = [k.strip() for k in args.which.split(",") if k.strip()]
    bad = [k for k in args.which if k not in ("dgp", "pandaset")]
    if bad:
        ap.error(f"--which: unknown {bad}; choose from dgp, pandaset")
    try:
        args.pandaset_windows = [int(t) for t in args.pandaset_windows.split(",") if t.strip()]
    except ValueError:
        ap.error(f"--pandaset-windows: expected integers, got {args.pandaset_windows!r}")
    return args


def analyse(clip, model, size: tuple[int, int], frames: list[int]) -> tuple[dict, object]:
    """The table row of one clip and its picture (``[rows, cols, 3]`` uint8)."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from splatnet.cameras import Cameras
    from splatnet.gaussians import Gaussians
    from splatnet.losses import apply_colour
    from splatnet.metrics import psnr
    from splatnet.pipeline.feedforward import forward, prepare_inputs
    from splatnet.rendering import render

    inp = prepare_inputs(clip, model.stride, frames=frames, size=size)
    out, _ = forward(inp, model)
    g = Gaussians(**{k: v[0] for k, v in out.gaussians.fields().items()}, check=False)
    c = inp.cameras
    cams = inp.view_cameras()
    n_cam = len(inp.camera_names)
    views = cams.num_cameras
    per_view = g.num_gaussians // views
    source = torch.arange(views).repeat_interleave(per_view)
    sky = out.sky
    images = inp.images[0].permute(0, 2, 3, 1)  # [V, H, W, 3]
    bright = Gaussians(**{**g.fields(), "opacities": g.opacities.clamp_min(OPACITY_FLOOR)},
                       check=False)

    # With model.colour_affine, view v's render goes through its camera's colour matrix, as in
    # training and in evaluate_clip (every view here is a context view).
    colour = None if out.colour is None else out.colour.for_cameras(c)[0]  # [V, 3, 4]
    # Where the cameras see the ego itself (the clip's masks, or estimated ones): those Gaussians
    # have opacity 0 and the view's own pixels are drawn back over them, as in evaluate_clip.
    ego = inp.ego
    estimated = ego is not None and ego.estimated

    def draw(gs, v):
        cam = cams[[v]]
        r = render(gs, cam)
        bg = sky.render(Cameras(cam.K[None], cam.cam_to_world[None], cam.width, cam.height,
                                check=False))[0]
        rgb = r.rgb + (1 - r.alpha) * bg.to(r.rgb)
        if colour is not None:
            rgb = apply_colour(rgb.movedim(-1, -3), colour[[v]]).movedim(-3, -1)
        rgb = rgb[0].clamp(0, 1)
        cam_name = inp.camera_names[v % n_cam]
        if ego is not None and ego.covers(cam_name):
            rgb = ego.composite(rgb, cam_name, None if cam.timestamps is None
                                else float(cam.timestamps.reshape(-1)[0]))
        return rgb, r.depth[0]

    def score(pred, v):
        # The clip's own masks mark what is scored; estimated ones do not (every pixel counts).
        m = None if inp.valid is None or estimated else inp.valid[0, v].permute(1, 2, 0)
        return float(psnr(pred, images[v], mask=m))

    s = model.stride
    pooled = F.interpolate(F.avg_pool2d(images.permute(0, 3, 1, 2), s), scale_factor=s,
                           mode="bilinear", align_corners=False).permute(0, 2, 3, 1)
    rows = {k: [] for k in SUBSETS}
    rows_bright = {k: [] for k in SUBSETS}
    ceiling, tiles, pairs = [], [], []
    with torch.no_grad():
        for v in range(views):
            pick = {"own": source == v, "same frame": source // n_cam == v // n_cam,
                    "same camera": source % n_cam == v % n_cam,
                    "all": torch.ones_like(source, dtype=torch.bool)}
            for k, m in pick.items():
                rows[k].append(score(draw(g[m], v)[0], v))
                rows_bright[k].append(score(draw(bright[m], v)[0], v))
            ceiling.append(score(pooled[v], v))
            own = rows["own"][-1]
            for u in range(views):
                if u != v:
                    pairs.append((score(draw(g[(source == v) | (source == u)], v)[0], v) - own,
                                  v, u))
            own_img = draw(g[source == v], v)[0]
            all_img, depth = draw(g, v)
            bright_img = draw(bright, v)[0]
            d = depth.clamp_min(1e-3).log()
            d = ((d - d.min()) / (d.max() - d.min()).clamp_min(1e-6)).expand(-1, -1, 3)
            tiles.append(torch.cat([images[v], own_img, all_img, bright_img, d], dim=1))
    name = lambda v: f"{inp.camera_names[v % n_cam]}@{inp.frames[v // n_cam]}"  # noqa: E731
    pairs.sort()
    row = {
        "size": list(size), "context_frames": frames, "views": views, "stride": s,
        "ceiling": float(np.mean(ceiling)),
        **{k: float(np.mean(x)) for k, x in rows.items()},
        **{f"{k}, opa>={OPACITY_FLOOR}": float(np.mean(x)) for k, x in rows_bright.items()},
        "mean_opacity": float(g.opacities.mean()),
        "ego": None if ego is None else ego.summary(),
        "worst_pairs": [{"view": name(v), "source": name(u), "db": round(d, 2)}
                        for d, v, u in pairs[:5]],
    }
    picture = (torch.cat(tiles, dim=0) * 255).round().byte().numpy()
    return row, picture


def table(results: dict) -> str:
    cols = ["ceiling", *SUBSETS, *(f"{k}, opa>={OPACITY_FLOOR}" for k in ("own", "all"))]
    lines = ["| clip | " + " | ".join(cols) + " | mean opacity |",
             "|---|" + "---:|" * (len(cols) + 1)]
    for name, r in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{r[c]:.2f}" for c in cols)
                     + f" | {r['mean_opacity']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import torch
    from PIL import Image

    from splatnet.clip import Clip
    from splatnet.io.checkpoint import load_model

    torch.set_num_threads(args.threads)
    ns = argparse.Namespace(which=args.which, data=args.data, real_cache=args.real_cache,
                            pandaset_windows=args.pandaset_windows)
    model = load_model(args.checkpoint).eval()
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    for job in fq.real_clips(ns):
        t0 = time.perf_counter()
        row, picture = analyse(Clip.load(job["path"]), model, tuple(job["size"]), [0, 2])
        results[job["name"]] = row
        picture = picture[:args.picture_views * picture.shape[0] // row["views"]]
        Image.fromarray(picture).save(out_dir / f"input_views_{job['name']}.jpg", quality=85)
        print(f"{job['name']}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    print(table(results))
    report = {"command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
              "checkpoint": args.checkpoint or "shipped", "machine": platform.platform(),
              "date": time.strftime("%Y-%m-%d"), "clips": results}
    (out_dir / "input_views.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
