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
                    "LPIPS with --lpips-weights, depth error against LiDAR where present, timings. "
                    "Default split: the clip's target cameras if it has any, else its middle "
                    "frame.")
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
    p.add_argument("--lpips-weights", type=_path_list, default=None, metavar="PATH[,PATH]",
                   help="score LPIPS v0.1 with local weights (nothing is downloaded): torchvision's "
                        "backbone file (alexnet-owt-7be5be79.pth or vgg16-397923af.pth, as in "
                        "~/.cache/torch/hub/checkpoints/) and the lpips package's "
                        "weights/v0.1/alex.pth or vgg.pth, one file holding both, or a directory "
                        "holding them (default: LPIPS is reported as skipped)")
    p.add_argument("--lpips-net", choices=["alex", "vgg"], default=None,
                   help="which LPIPS network, when the weights hold both (default: recognised "
                        "from the weights)")
    p.add_argument("--report", default=None,
                   help="JSON report path (default: eval-CLIPNAME.json in the current directory)")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    p.set_defaults(func=run)


def _path_list(text: str) -> list[str]:
    paths = [t.strip() for t in text.split(",") if t.strip()]
    if not paths:
        raise argparse.ArgumentTypeError("expected one or more comma-separated paths")
    return paths


def run(args: argparse.Namespace) -> int:
    import time

    from ..checkpoint import load_model
    from ..clip import Clip
    from ..evaluate import evaluate_clip
    from ..feedforward import _clip_path, _device
    from ..io.atomic import atomic_write_text
    from ..lpips import LPIPS

    device = _device(args.device)
    if args.lpips_net and not args.lpips_weights:
        raise ValueError("--lpips-net needs --lpips-weights")
    lpips, lpips_load = None, 0.0
    if args.lpips_weights:  # before the reconstruction, so that a bad path fails at once
        t0 = time.perf_counter()
        lpips = LPIPS.from_files(*args.lpips_weights, net=args.lpips_net).to(device)
        lpips_load = time.perf_counter() - t0
    clip = Clip.load(_clip_path(args.clip))
    model = load_model(args.checkpoint, device=device)
    report = evaluate_clip(clip, model, holdout_frames=args.holdout_frames,
                           holdout_cameras=args.holdout_cameras, size=args.size, device=device,
                           lpips=lpips)
    if lpips is not None:
        report["timings"]["load_lpips"] = round(lpips_load, 4)
    report["checkpoint"] = args.checkpoint or "default"
    path = Path(args.report) if args.report else Path(f"eval-{Path(args.clip).resolve().name}.json")
    atomic_write_text(path, json.dumps(report, indent=2) + "\n")
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"clip {report['clip']}: {report['split']['description']}, "
          f"{report['gaussians']} Gaussians at {report['size'][0]}x{report['size'][1]}")
    lp = report["lpips"]
    has_lpips = "mean" in lp
    print(f"{'frame':>5}  {'camera':<20} {'PSNR':>7} {'SSIM':>6}" + (f" {'LPIPS':>6}" if has_lpips else ""))
    for r in report["per_view"]:
        print(f"{r['frame']:>5}  {r['camera']:<20} {r['psnr']:7.2f} {r['ssim']:6.3f}"
              + (f" {r['lpips']:6.3f}" if has_lpips else ""))
    print(f"{'mean':>5}  {'':<20} {report['psnr']:7.2f} {report['ssim']:6.3f}"
          + (f" {lp['mean']:6.3f}" if has_lpips else ""))
    if "depth_vs_lidar" in report:
        d = report["depth_vs_lidar"]
        print(f"depth vs LiDAR: abs rel {d['abs_rel']:.3f}, RMSE {d['rmse_m']:.2f} m "
              f"({d['points']} points)")
    if has_lpips:
        print(f"LPIPS: v0.1, {lp['net']} ({', '.join(lp['weights'])})")
    else:
        print(f"LPIPS: skipped ({lp['skipped']})")
    print("timings: " + ", ".join(f"{k} {v:.2f} s" for k, v in report["timings"].items()))
    print(f"report written to {path}")
    return 0
