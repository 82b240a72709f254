"""``splatnet eval CLIP``: reconstruct from context views, score held-out views, JSON report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from splatnet.cli._args import (
    check_output_file,
    device_arg,
    ego_cameras_text,
    int_list,
    name_list,
    resolve_device,
    size_hw,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="score feed-forward reconstruction on held-out views of a clip",
        description="Reconstruct from the context views and score the held-out ones: PSNR, SSIM, "
                    "LPIPS with --lpips-weights, depth error against LiDAR where present, timings; "
                    "beside them the floor of copying the nearest context frame's image and the "
                    "scores of the context views rendered back. "
                    "Default split: the clip's target cameras if it has any, else its middle "
                    "frame.")
    p.add_argument("clip", help="clip directory (or its clip.json)")
    p.add_argument("--checkpoint", default=None,
                   help="model file or checkpoint directory (default: the shipped model)")
    held = p.add_mutually_exclusive_group()
    held.add_argument("--holdout-frames", type=int_list, default=None, metavar="F[,F...]",
                      help="hold out these frames (all rig cameras)")
    held.add_argument("--holdout-cameras", type=name_list, default=None, metavar="NAMES",
                      help="hold out these cameras (all frames)")
    p.add_argument("--size", type=size_hw, default=None, metavar="HxW",
                   help="size the held-out views are rendered and scored at (default: native, "
                        "rounded down to the network's stride)")
    p.add_argument("--network-size", type=size_hw, default=None, metavar="HxW",
                   help="size the network runs at (default: --size, or the model's working size "
                        "when --size is larger; see splatnet reconstruct --help)")
    p.add_argument("--no-lidar", action="store_true",
                   help="withhold the clip's LiDAR from the network (its sparse-depth input and, "
                        "for a model with lidar_fusion, the depth its Gaussians are moved to); "
                        "the held-out frames' LiDAR still scores the depth")
    p.add_argument("--no-ego-masks", action="store_true",
                   help="do not estimate where a clip without camera masks shows the ego's own "
                        "body (by default those pixels are kept out of the Gaussians and drawn "
                        "back over renders of the same rig camera; the report's \"scene\" scores "
                        "the other pixels alone)")
    p.add_argument("--device", type=device_arg, default="cpu",
                   help="cpu, cuda or cuda:N (default cpu)")
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
                   help="JSON report path (default: eval-CLIPNAME.json in the current directory); "
                        "an existing file is kept unless --force")
    p.add_argument("--force", action="store_true", help="overwrite an existing report")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def _path_list(text: str) -> list[str]:
    paths = [t.strip() for t in text.split(",") if t.strip()]
    if not paths:
        raise argparse.ArgumentTypeError("expected one or more comma-separated paths")
    return paths


def _check_report(path: Path, args: argparse.Namespace) -> None:
    """The report may be written: not a directory, an existing parent, no overwrite without
    --force; the message names --report (or says it is the default report)."""
    try:
        check_output_file(path, args.force)
    except OSError as exc:
        raise type(exc)(f"{'--report' if args.report else 'report'} {exc}") from None


def run(args: argparse.Namespace) -> int:
    import time

    from splatnet.cli.reconstruct import _clip_dir, stage_progress
    from splatnet.clip import Clip
    from splatnet.io.atomic import atomic_write_text
    from splatnet.io.checkpoint import load_model
    from splatnet.metrics.lpips import LPIPS
    from splatnet.pipeline.evaluate import evaluate_clip
    from splatnet.pipeline.feedforward import _clip_path

    device = resolve_device(args.device)
    if args.lpips_net and not args.lpips_weights:
        raise ValueError("--lpips-net needs --lpips-weights")
    clip_dir = _clip_dir(args.clip)
    path = Path(args.report) if args.report else Path(f"eval-{clip_dir.name}.json")
    _check_report(path, args)  # before any work: the run takes seconds to minutes
    clip = Clip.load(_clip_path(args.clip))
    lpips, lpips_load = None, 0.0
    if args.lpips_weights:  # before the reconstruction, so that a bad path fails at once
        t0 = time.perf_counter()
        lpips = LPIPS.from_files(*args.lpips_weights, net=args.lpips_net).to(device)
        lpips_load = time.perf_counter() - t0
    model = load_model(args.checkpoint, device=device)
    stages = ["decode context views", "network + post-process", "render context views",
              "render and score held-out views", "write report"]
    with stage_progress(f"eval {clip_dir.name}", stages, disable=args.quiet) as stage:
        report = evaluate_clip(clip, model, holdout_frames=args.holdout_frames,
                               holdout_cameras=args.holdout_cameras, size=args.size,
                               network_size=args.network_size, device=device, lpips=lpips,
                               progress=stage, use_lidar=not args.no_lidar,
                               ego_masks="off" if args.no_ego_masks else "auto")
        if lpips is not None:
            report["timings"]["load_lpips"] = round(lpips_load, 4)
        report["checkpoint"] = args.checkpoint or "default"
        stage("write report")
        _check_report(path, args)  # again: it may have appeared while this ran
        atomic_write_text(path, json.dumps(report, indent=2) + "\n")
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"clip {report['clip']}: {report['split']['description']}, "
          f"{report['gaussians']} Gaussians at {report['size'][0]}x{report['size'][1]} (the network "
          f"ran at {report['network_size'][0]}x{report['network_size'][1]}; "
          + ("with the clip's LiDAR" + (", Gaussians moved to its depth" if report["lidar_fusion"]
                                        else "") if report["lidar"] else "without LiDAR") + ")")
    lp = report["lpips"]
    has_lpips = "mean" in lp
    print(f"{'frame':>5}  {'camera':<20} {'PSNR':>7} {'SSIM':>6}" + (f" {'LPIPS':>6}" if has_lpips else ""))
    for r in report["per_view"]:
        print(f"{r['frame']:>5}  {r['camera']:<20} {r['psnr']:7.2f} {r['ssim']:6.3f}"
              + (f" {r['lpips']:6.3f}" if has_lpips else ""))
    print(f"{'mean':>5}  {'':<20} {report['psnr']:7.2f} {report['ssim']:6.3f}"
          + (f" {lp['mean']:6.3f}" if has_lpips else ""))
    near, ctx = report["nearest_context"], report["context_views"]
    print(f"nearest context frame (floor): {near['psnr']:.2f} dB / {near['ssim']:.3f}")
    print(f"context views rendered back: {ctx['psnr']:.2f} dB / {ctx['ssim']:.3f} "
          f"({ctx['views']} views)")
    if report.get("detail") is not None:
        alone = report["gaussians_only"]
        print(f"detail: the context images' detail that the Gaussians miss is added to the "
              f"held-out renders through their depth (model.detail_layer, {report['detail']['views']} "
              f"views); the Gaussians alone: {alone['psnr']:.2f} dB / {alone['ssim']:.3f}")
    if report.get("colour_fit"):
        print("colour: each context camera's gain and offset per channel fitted to its context "
              "images; renders of those cameras go through them (the Gaussians are unchanged; a "
              ".scene keeps the matrices)")
    size, net = report["size"], report["network_size"]
    if report.get("upsample_filter") is not None and size[0] > net[0]:
        print(f"upsample: scored at {size[0]}x{size[1]}, larger than the network's "
              f"{net[0]}x{net[1]}: its Gaussians are widened for that (model.upsample_filter, "
              f"sigma {report['upsample_filter']:g} network px)")
    ego = report.get("ego")
    if ego is not None and ego["masks"] == "estimated":
        sc = report["scene"]
        print(f"the ego's own body, estimated ({ego_cameras_text(ego)} of the pixels): left out "
              "of the Gaussians, drawn back over renders of the same camera; without those pixels: "
              f"{sc['psnr']:.2f} dB / {sc['ssim']:.3f}, floor {sc['nearest_context']['psnr']:.2f} dB "
              f"/ {sc['nearest_context']['ssim']:.3f} (--no-ego-masks to keep it in the scene)")
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
