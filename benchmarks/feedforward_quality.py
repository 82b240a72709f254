"""Held-out quality of the feed-forward network vs its baselines, on synthetic clips whose seeds
were never used in training (issue 5's report).

For each clip, every method is scored on the same held-out views (the clip's target cameras: views
0.5-2 m off the rig that no method sees) at the same size:

- ``feed-forward``: one network pass over the rig views of all frames (``splatnet eval``'s path);
- ``lidar splats``: baseline (a), the LiDAR points of those frames as Gaussians coloured from the
  context images (per-scene optimisation's LiDAR initialisation, zero steps);
- ``optimisation, same wall time``: baseline (b), per-scene optimisation from LiDAR given the
  feed-forward wall time (iterations = what fits, measured in the same run).

    python benchmarks/feedforward_quality.py [--checkpoint PATH] [--seeds 1000,1001] [--size 128x224]

Prints a Markdown table; writes ``benchmarks/results/feedforward_quality.json``.
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


def main() -> None:
    import torch

    from splatnet.cli._args import size_hw
    from splatnet.clip import Clip
    from splatnet.io.checkpoint import load_model
    from splatnet.optimization.api import optimize_clip
    from splatnet.pipeline.evaluate import evaluate_clip
    from splatnet.train.data import synthetic_clips

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None, help="model (default: the shipped one)")
    ap.add_argument("--seeds", default="1000,1001,1002,1003", help="held-out synthetic seeds")
    ap.add_argument("--clip-size", type=size_hw, default=(256, 448), help="generated clip size")
    ap.add_argument("--size", type=size_hw, default=(128, 224), help="reconstruction/scoring size")
    ap.add_argument("--cache", default="~/.cache/splatnet/synthetic", help="synthetic clip cache")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "feedforward_quality.json"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    model = load_model(args.checkpoint)
    h, w = args.size
    downscale = args.clip_size[0] / h
    rows = []
    for path in synthetic_clips(seeds, 6, 3, args.clip_size, 2, args.cache):
        clip = Clip.load(path)
        t0 = time.perf_counter()
        ff = evaluate_clip(clip, model, size=(h, w))
        ff_wall = ff["timings"]["load"] + ff["timings"]["network"] + ff["timings"]["postprocess"]
        lidar = optimize_clip(clip, iterations=0, init="lidar", downscale=downscale)
        probe = optimize_clip(clip, iterations=5, init="lidar", downscale=downscale)
        per_step = max(probe.fit.seconds / 5, 1e-6)
        steps = max(0, int((ff_wall - probe.init_seconds) / per_step))
        same = optimize_clip(clip, iterations=steps, init="lidar", downscale=downscale)
        rows.append({
            "clip": path.name,
            "held_out": lidar.split.description,
            "feed_forward": {"psnr": ff["psnr"], "ssim": ff["ssim"], "seconds": ff_wall,
                             "network_seconds": ff["timings"]["network"],
                             "gaussians": ff["gaussians"]},
            "lidar_splats": {"psnr": lidar.metrics["psnr"], "ssim": lidar.metrics["ssim"],
                             "seconds": lidar.seconds, "gaussians": lidar.gaussians.num_gaussians},
            "optimisation_same_time": {"psnr": same.metrics["psnr"], "ssim": same.metrics["ssim"],
                                       "seconds": same.seconds, "iterations": steps},
            "bench_seconds": time.perf_counter() - t0,
        })
        print(f"{path.name}: done", file=sys.stderr)

    def mean(key: str, field: str) -> float:
        return sum(r[key][field] for r in rows) / len(rows)

    print(f"\n## Feed-forward vs baselines on held-out synthetic clips (seeds {args.seeds}), "
          f"{w}x{h}\n")
    print("| clip | feed-forward PSNR / SSIM (s) | LiDAR splats PSNR / SSIM | optimisation, same "
          "wall time PSNR / SSIM (iterations) |")
    print("|---|---|---|---|")
    for r in rows:
        f, a, b = r["feed_forward"], r["lidar_splats"], r["optimisation_same_time"]
        print(f"| {r['clip']} | {f['psnr']:.2f} / {f['ssim']:.3f} ({f['seconds']:.2f} s) | "
              f"{a['psnr']:.2f} / {a['ssim']:.3f} | {b['psnr']:.2f} / {b['ssim']:.3f} "
              f"({b['iterations']}) |")
    print(f"| **mean** | **{mean('feed_forward', 'psnr'):.2f}** / {mean('feed_forward', 'ssim'):.3f}"
          f" | {mean('lidar_splats', 'psnr'):.2f} / {mean('lidar_splats', 'ssim'):.3f} | "
          f"{mean('optimisation_same_time', 'psnr'):.2f} / "
          f"{mean('optimisation_same_time', 'ssim'):.3f} |")
    doc = {"date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
           "torch": torch.__version__, "threads": torch.get_num_threads(),
           "checkpoint": args.checkpoint or "default", "size": [h, w], "seeds": seeds,
           "rows": rows}
    from splatnet.io.atomic import atomic_write_text

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(doc, indent=2) + "\n")
    print(f"\nwritten {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
