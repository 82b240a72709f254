"""``splatnet eval CLIP``: reconstruct from context views, score held-out views, JSON report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._args import int_list, name_list, size_hw


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="score feed-forward reconstruction on held-out views of a clip",
        description="Reconstruct from the context views and score the held-out ones: PSNR, SSIM, "
                    "depth error against LiDAR where present, timings. Default split: the "
                    "clip's target cameras if it has any, else its middle frame.")
    p.add_argument("clip", help="clip directory")
    p.add_argument("--checkpoint", default=None,
                   help="model file or checkpoint directory (default: the shipped model)")
    held = p.add_mutually_exclusive_group()
    held.add_argument("--holdout-frames", type=int_list, default=None, metavar="F[,F...]",
                      help="hold out these frames (all rig cameras)")
    held.add_argument("--holdout-cameras", type=name_list, default=None, metavar="NAMES",
                      help="hold out these cameras (all frames)")
    p.add_argument("--size", type=size_hw, default=None, metavar="HxW",
                   help="network and scoring size (default: native, rounded down to the stride)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--report", default=None,
                   help="JSON report path (default: eval-CLIPNAME.json in the current directory)")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import load_model
    from ..clip import Clip
    from ..evaluate import evaluate_clip
    from ..feedforward import _clip_path, _device
    from ..io.atomic import atomic_write_text

    device = _device(args.device)
    clip = Clip.load(_clip_path(args.clip))
    model = load_model(args.checkpoint, device=device)
    report = evaluate_clip(clip, model, holdout_frames=args.holdout_frames,
                           holdout_cameras=args.holdout_cameras, size=args.size, device=device)
    report["checkpoint"] = args.checkpoint or "default"
    path = Path(args.report) if args.report else Path(f"eval-{Path(args.clip).resolve().name}.json")
    atomic_write_text(path, json.dumps(report, indent=2) + "\n")
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"clip {report['clip']}: {report['split']['description']}, "
          f"{report['gaussians']} Gaussians at {report['size'][0]}x{report['size'][1]}")
    print(f"{'frame':>5}  {'camera':<20} {'PSNR':>7} {'SSIM':>6}")
    for r in report["per_view"]:
        print(f"{r['frame']:>5}  {r['camera']:<20} {r['psnr']:7.2f} {r['ssim']:6.3f}")
    print(f"{'mean':>5}  {'':<20} {report['psnr']:7.2f} {report['ssim']:6.3f}")
    if "depth_vs_lidar" in report:
        d = report["depth_vs_lidar"]
        print(f"depth vs LiDAR: abs rel {d['abs_rel']:.3f}, RMSE {d['rmse_m']:.2f} m "
              f"({d['points']} points)")
    print(f"LPIPS: skipped ({report['lpips']['skipped']})")
    print("timings: " + ", ".join(f"{k} {v:.2f} s" for k, v in report["timings"].items()))
    print(f"report written to {path}")
    return 0
