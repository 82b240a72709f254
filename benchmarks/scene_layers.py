"""A reconstructed 4D scene's held-out rig views with and without its layers: each rig camera's
fitted colour matrix (``Scene.colour``), the ego's own body drawn over the cameras that see it
(``Scene.ego``) and the context images' detail (``Scene.detail``, with a model whose
``detail_layer`` is on), next to ``splatnet eval``'s score of the same views.

For each real clip of ``benchmarks/feedforward_quality.py`` (same conversions, cache and sizes:
DGP ``scene_02`` at 128x200, PandaSet 002 windows at 128x224; context frames 0 and 2, held out:
frame 1), :func:`splatnet.reconstruct_scene` runs once and its render of the rig cameras at the
held-out frame (:meth:`Scene.render`, the network's sky behind, clamped) is scored against the
recorded images five ways: Gaussians only, + colour, + ego layer, colour and ego, all layers
(the default, what ``splatnet render`` replays and ``DrivingEnv`` observations show). ``eval`` is
:func:`splatnet.pipeline.evaluate_clip` of the same clip (the reconstruction without actor tracks).

    python benchmarks/scene_layers.py [--which dgp,pandaset] [--pandaset-windows 30,33,36]
        [--out benchmarks/results/scene_layers.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import feedforward_quality as fq  # noqa: E402 - after the path it is found on

VARIANTS = {"gaussians only": (False, False, False), "+ colour": (True, False, False),
            "+ ego layer": (False, True, False), "colour and ego": (True, True, False),
            "all layers (default)": (True, True, True)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    fq.add_real_clip_args(ap, "30,33,36")
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
    out = {}
    with torch.no_grad():
        for name, (colour, ego, detail) in VARIANTS.items():
            rgb = scene.render(held.cameras, colour=colour, ego=ego, detail=detail).rgb.clamp(0, 1)
            p = [float(psnr(rgb[v], held.images[v])) for v in range(len(held))]
            s = [float(ssim(rgb[v], held.images[v])) for v in range(len(held))]
            out[name] = {"psnr": float(np.mean(p)), "ssim": float(np.mean(s)),
                         "per_view": dict(zip(held.camera_names, [round(x, 3) for x in p]))}
    rep = evaluate_clip(clip, model, holdout_frames=[1], size=size)
    out["eval"] = {"psnr": rep["psnr"], "ssim": rep["ssim"]}
    out["ego_cameras"] = [] if scene.ego is None else sorted(scene.ego.masks)
    out["detail"] = None if scene.detail is None else scene.detail.summary()
    return out


def main(argv: list[str] | None = None) -> int:
    import torch

    from splatnet.clip import Clip
    from splatnet.io.checkpoint import load_model

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    model = load_model()
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
