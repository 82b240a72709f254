"""A scene's detail layer on the synthetic streets of ``benchmarks/scenes.py``, three ways: no
layer, the layer with its tracked actors carried as background (``DetailLayer.actors`` emptied:
every pixel warped as if static) and the layer as shipped (actors carried with their boxes).

For each held-out street (``--seeds``, default 1000-1003, never trained on; generated into
``--cache`` as ``scenes.py`` does, 6 rig cameras x 3 frames at 128x224 with the rig shifted 0-3 m
sideways), :func:`splatnet.reconstruct_scene` runs once on frames 0 and 2 and its renders are
scored (PSNR, mean over views) at the held-out frame 1 and, off the logged path, at the context
frames, per lateral offset; and inside the boxes of the actors moving at frame 1 (one pooled PSNR
over their pixels, as ``scenes.py`` scores them).

    python benchmarks/scene_actor_detail.py [--seeds 1000,1001,1002,1003]
        [--out benchmarks/results/scene_actor_detail_synthetic.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import feedforward_quality as fq  # noqa: E402 - after the path it is found on
import scenes as S  # noqa: E402

WAYS = ("none", "static", "carried")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1000,1001,1002,1003")
    ap.add_argument("--cache", default="~/.cache/splatnet/scenes", help="synthetic clip cache")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results"
                                         / "scene_actor_detail_synthetic.json"))
    return ap.parse_args(argv)


def score_street(clip, model) -> dict:
    import numpy as np
    import torch

    from splatnet.metrics import psnr
    from splatnet.pipeline.scene import reconstruct_scene

    scene = reconstruct_scene(clip, model, frames=S.CONTEXT, size=S.SYNTH_SIZE)
    ways = {"none": scene.replace(detail=None),
            "static": scene.replace(detail=dataclasses.replace(scene.detail, actors={})),
            "carried": scene}
    row = {}
    for m in S.OFFSETS:
        for when, frames in (("held_out", [S.HELD_OUT]), ("context", S.CONTEXT)):
            if when == "context" and m == 0:
                continue  # the context views themselves
            names = [f"{c}.off{m}" for c in clip.rig_camera_names] if m else list(clip.rig_camera_names)
            views = clip.views(frames=frames, cameras=names)
            for k, sc in ways.items():
                with torch.no_grad():
                    rgb = sc.render(views.cameras).rgb.clamp(0, 1)
                row[f"{m}m_{when}.{k}"] = float(np.mean([float(psnr(rgb[v], views.images[v]))
                                                          for v in range(len(views))]))
    moving = [a for a in clip.actors if a.moving is not None and S.HELD_OUT in a.frames.tolist()
              and bool(a.moving[a.frames.tolist().index(S.HELD_OUT)])]
    views = clip.views(frames=[S.HELD_OUT], cameras=clip.rig_camera_names)
    masks = S.view_masks(moving, S.HELD_OUT, views)
    for k, sc in ways.items():
        with torch.no_grad():
            rgb = sc.render(views.cameras).rgb.clamp(0, 1)
        row[f"moving.{k}"] = S.pooled_psnr(rgb, views.images, masks)
    return row


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    from splatnet.clip import Clip

    args = parse_args(argv)
    started, model = fq.start_run(args.threads)
    rows = []
    for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
        clip = Clip.load(S.synthetic_clip(Path(args.cache).expanduser(), seed))
        rows.append({"seed": seed, **score_street(clip, model)})
        print(f"seed {seed}: " + ", ".join(f"{k} {v:.2f}" for k, v in rows[-1].items()
                                           if k.endswith(".carried") and not k.startswith("moving")),
              file=sys.stderr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"started": started, "threads": args.threads, "rows": rows}, indent=1))
    keys = sorted({k.rsplit(".", 1)[0] for r in rows for k in r if "." in k and not k.startswith("moving")})
    print("| target | " + " | ".join(WAYS) + " |")
    print("|---|" + "---:|" * len(WAYS))
    for k in keys:
        print(f"| {k} | " + " | ".join(f"{np.mean([r[f'{k}.{w}'] for r in rows]):.2f}" for w in WAYS) + " |")
    print("| moving actors, frame 1 (per street) | " + " | ".join(
        " / ".join(f"{r[f'moving.{w}']['psnr']:.2f}" for r in rows) for w in WAYS) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
