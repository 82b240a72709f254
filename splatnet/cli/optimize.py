"""``splatnet optimize CLIP -o OUT``: classic per-scene 3DGS optimisation of one clip, to a PLY."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from splatnet.cli._args import (
    check_output_file,
    device_arg,
    finite_float,
    int_list,
    name_list,
    resolve_device,
)

#: The reference 3DGS schedule's shorter run (its 7k-iteration checkpoint): about 2 h on 2 CPU
#: cores, so the command says up front how many iterations it will run.
DEFAULT_ITERATIONS = 7000


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "optimize", help="optimise 3D Gaussians for one clip (classic per-scene 3DGS)",
        description="Classic per-scene 3D Gaussian splatting on splatnet's rasterizer: initialise "
                    "from LiDAR (or random points), optimise with L1 + SSIM, adaptive density "
                    "control and the reference learning rates, write a 3DGS PLY, and print PSNR / "
                    "SSIM on held-out views (by default the clip's target cameras, else every 8th "
                    "frame).")
    p.add_argument("clip", help="a clip directory (see docs/clip-format.md)")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("-o", "--out", help="the .ply file to write")
    out.add_argument("--output", dest="out", help=argparse.SUPPRESS)  # the old spelling
    p.add_argument("--iterations", type=int, default=None, metavar="N",
                   help=f"optimisation steps (default {DEFAULT_ITERATIONS}: hours on a CPU)")
    p.add_argument("--init", choices=("lidar", "random", "network", "network+lidar"), default="lidar",
                   help="starting Gaussians: LiDAR points coloured from the images (default), "
                        "random points in the clip's bounds, the shipped network's output, or "
                        "the network's output plus the LiDAR points (best for short runs)")
    hold = p.add_mutually_exclusive_group()
    hold.add_argument("--holdout-frames", type=int_list, metavar="F[,F...]",
                      help="frame indices whose rig views are held out for evaluation")
    hold.add_argument("--holdout-cameras", type=name_list, metavar="NAME[,NAME...]",
                      help="cameras held out for evaluation in every frame")
    p.add_argument("--device", type=device_arg, default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--max-gaussians", type=int, default=None, metavar="N",
                   help="cap on the number of Gaussians (default: none)")
    p.add_argument("--downscale", type=finite_float, default=1.0, metavar="F",
                   help="divide the image size by F (default 1)")
    p.add_argument("--sh-degree", type=int, choices=(0, 1, 2, 3), default=3,
                   help="SH degree of the result (default 3)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads for torch (default: torch's choice; 1 is often faster on a "
                        "busy machine)")
    p.add_argument("--metrics-json", metavar="PATH",
                   help="also write the held-out scores and timings as JSON to PATH")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.add_argument("--quiet", action="store_true", help="no progress bar or status lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from splatnet.io.atomic import atomic_write_text
    from splatnet.optimization import OptimConfig
    from splatnet.optimization.api import optimize_clip

    out = Path(args.out)
    check_output_file(out, args.force, ".ply")
    metrics_path = Path(args.metrics_json) if args.metrics_json else None
    if metrics_path is not None:
        check_output_file(metrics_path, args.force)
    iterations = DEFAULT_ITERATIONS if args.iterations is None else args.iterations
    if iterations < 0:
        raise ValueError(f"--iterations: expected a non-negative number, got {iterations}")
    if args.max_gaussians is not None and args.max_gaussians <= 0:
        raise ValueError(f"--max-gaussians: expected a positive number, got {args.max_gaussians}")
    if args.threads is not None:
        if args.threads <= 0:
            raise ValueError(f"--threads: expected a positive number, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    clip_dir = Path(args.clip)
    if not clip_dir.exists():
        raise FileNotFoundError(f"{clip_dir}: no such clip directory")

    if not args.quiet:
        note = " (the default; --iterations N to change it)" if args.iterations is None else ""
        print(f"splatnet optimize: {iterations} iterations{note}", file=sys.stderr, flush=True)
    say = None if args.quiet else print
    result = optimize_clip(
        clip_dir, iterations=iterations, init=args.init, holdout_frames=args.holdout_frames,
        holdout_cameras=args.holdout_cameras, device=resolve_device(args.device),
        max_gaussians=args.max_gaussians, seed=args.seed, downscale=args.downscale,
        config=OptimConfig(sh_degree=args.sh_degree), progress=not args.quiet, log=say,
    )
    dropped = result.gaussians.to("cpu").save_ply(out)
    m = result.metrics
    where = result.split.description if m["held_out"] else "training views (nothing held out)"
    print(f"{where}: PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f} over {m['views']} views")
    note = f" ({dropped} non-finite dropped)" if dropped else ""
    print(f"wrote {out}: {result.gaussians.num_gaussians} Gaussians{note}")
    if metrics_path is not None:
        summary = {
            "clip": str(clip_dir), "output": str(out), "iterations": iterations,
            "init": args.init, "seed": args.seed, "eval": result.split.description,
            "held_out": m["held_out"], "psnr": m["psnr"], "ssim": m["ssim"],
            "per_view": m["per_view"], "num_gaussians": result.gaussians.num_gaussians,
            "num_initial": result.num_initial, "init_seconds": result.init_seconds,
            "fit_seconds": result.fit.seconds, "backend": result.fit.backend,
        }
        atomic_write_text(metrics_path, json.dumps(summary, indent=1) + "\n")
    return 0
