"""A reconstructed 4D scene's held-out rig views with and without its layers: each rig camera's
fitted colour matrix (``Scene.colour``), the ego's own body drawn over the cameras that see it
(``Scene.ego``) and the context images' detail (``Scene.detail``, with a model whose
``detail_layer`` is on), next to ``splatnet eval``'s score of the same views.

For each real clip of ``benchmarks/feedforward_quality.py`` (same conversions, cache and sizes:
DGP ``scene_02`` at 128x200, PandaSet 002 windows at 128x224; context frames 0 and 2, held out:
frame 1), :func:`splatnet.reconstruct_scene` runs once and its render of the rig cameras at the
held-out frame (:meth:`Scene.render`, the network's sky behind, clamped) is scored against the
recorded images six ways: Gaussians only, + colour, + ego layer, colour and ego, all layers
with the detail layer's actors carried as the background (``DetailLayer.actors`` emptied: the
layer before actor-aware carrying), all layers (the default, what ``splatnet render`` replays and
``DrivingEnv`` observations show). ``eval`` is :func:`splatnet.pipeline.evaluate_clip` of the
same clip (the reconstruction without actor tracks). ``actor_pixels`` is the share of the
held-out pixels on an actor (covered, and nearer than the scene without its actors), with each
variant's mean squared error there and elsewhere (``mse_actors`` / ``mse_rest``, per image
pixel). ``--real-native``: the scene at the clip's size (the network at its working size) and
its replay at that size.

    python benchmarks/scene_layers.py [--which dgp,pandaset] [--pandaset-windows 30,33,36]
        [--real-native] [--out benchmarks/results/scene_layers.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import feedforward_quality as fq  # noqa: E402 - after the path it is found on

VARIANTS = {"gaussians only": (False, False, False, True), "+ colour": (True, False, False, True),
            "+ ego layer": (False, True, False, True), "colour and ego": (True, True, False, True),
            "all layers, actors as background": (True, True, True, False),
            "all layers (default)": (True, True, True, True)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    fq.add_real_clip_args(ap, "30,33,36")
    ap.add_argument("--real-native", action="store_true",
                    help="reconstruct and replay at the clip's converted size (DGP 1216x1936, "
                         "PandaSet 270x480), the network at its working size")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "scene_layers.json"))
    return ap.parse_args(argv)


def score_clip(clip, model, size) -> dict:
    import numpy as np
    import torch

    import splatnet
    from splatnet.metrics import psnr, ssim
    from splatnet.pipeline import evaluate_clip

    scene = splatnet.reconstruct_scene(clip, model, frames=[0, 2], size=size)
    held = clip.views(frames=[1], size=size)
    static = scene if scene.detail is None else \
        scene.replace(detail=dataclasses.replace(scene.detail, actors={}))
    out = {}
    with torch.no_grad():
        full = scene.render(held.cameras, detail=False)
        bare = scene.replace(actors={}).render(held.cameras, detail=False)
        on_actor = ((bare.depth - full.depth) > 0.02 * full.depth) & (full.alpha > 0.5)
        on_actor = on_actor[..., 0]
        out["actor_pixels"] = float(on_actor.float().mean())
        for name, (colour, ego, detail, actors) in VARIANTS.items():
            rgb = (scene if actors else static).render(held.cameras, colour=colour, ego=ego,
                                                       detail=detail).rgb.clamp(0, 1)
            p = [float(psnr(rgb[v], held.images[v])) for v in range(len(held))]
            s = [float(ssim(rgb[v], held.images[v])) for v in range(len(held))]
            err = ((rgb - held.images) ** 2).mean(-1)
            out[name] = {"psnr": float(np.mean(p)), "ssim": float(np.mean(s)),
                         "mse_actors": float(err[on_actor].sum()) / err.numel(),
                         "mse_rest": float(err[~on_actor].sum()) / err.numel(),
                         "per_view": dict(zip(held.camera_names, [round(x, 3) for x in p]))}
    rep = evaluate_clip(clip, model, holdout_frames=[1], size=size)
    out["eval"] = {"psnr": rep["psnr"], "ssim": rep["ssim"]}
    out["ego_cameras"] = [] if scene.ego is None else sorted(scene.ego.masks)
    out["detail"] = None if scene.detail is None else scene.detail.summary()
    return out


def main(argv: list[str] | None = None) -> int:
    from splatnet.clip import Clip

    args = parse_args(argv)
    started, model = fq.start_run(args.threads)
    rows = []
    for job in fq.real_clips_of(args):
        t0 = time.perf_counter()
        res = score_clip(Clip.load(job["path"]), model, job["size"])
        rows.append({"clip": job["name"], "group": job["group"], **res,
                     "seconds": time.perf_counter() - t0})
        print(f"{job['name']}: " + ", ".join(f"{k} {res[k]['psnr']:.2f}" for k in [*VARIANTS, "eval"]),
              file=sys.stderr)
    fq.write_clip_rows(args.out, started, rows)
    print("| clip | " + " | ".join(VARIANTS) + " | splatnet eval |")
    print("|---|" + "---|" * (len(VARIANTS) + 1))
    for r in rows:
        print(f"| {r['clip']} | " + " | ".join(f"{r[k]['psnr']:.2f} / {r[k]['ssim']:.3f}"
                                               for k in [*VARIANTS, "eval"]) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
