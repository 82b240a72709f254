"""``splatnet batch reconstruct|eval INPUTS --out-dir D``: many clips on worker processes or a Ray
cluster, resumably (docs/cluster.md)."""

from __future__ import annotations

import argparse
import json
import os

from splatnet.cli._args import device_arg, frame_range, int_list, name_list, size_hw


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "batch", help="reconstruct or evaluate many clips on worker processes or a Ray cluster",
        description="Run splatnet reconstruct or eval over many clips: each worker loads the "
                    "model once and decodes the next clip while the network runs; "
                    "OUT_DIR/results.jsonl gets one line per clip as it finishes, "
                    "OUT_DIR/summary.json and summary.md the totals. A re-run with the same "
                    "--out-dir skips clips whose output is complete (checked from the file) and "
                    "retries failed ones with --retry-failed. See docs/cluster.md.")
    bsub = p.add_subparsers(dest="batch_command", metavar="COMMAND", required=True)
    rec = bsub.add_parser(
        "reconstruct", help="reconstruct every clip into OUT_DIR/NAME.FORMAT",
        description="Reconstruct every clip (as splatnet reconstruct --out-dir does) into "
                    "OUT_DIR/NAME.ply, .splat or .scene.")
    _common(rec)
    rec.add_argument("--format", choices=["ply", "splat", "scene"], default="ply",
                     help="output format (default ply)")
    rec.add_argument("--refine", type=int, default=0, metavar="STEPS",
                     help="optimisation steps on the context views after the network (default 0; "
                          "as splatnet reconstruct --refine)")
    rec.add_argument("--frames", type=frame_range, default=None, metavar="A:B",
                     help="context frames, Python slice style (default: all; a manifest line's "
                          "\"frames\" overrides it)")
    rec.add_argument("--cameras", type=name_list, default=None, metavar="NAMES",
                     help="comma-separated context camera names (default: the rig cameras)")
    rec.add_argument("--size", type=size_hw, default=None, metavar="HxW",
                     help="network input size (default: as splatnet reconstruct)")
    rec.add_argument("--no-lidar", action="store_true", help="ignore the clips' LiDAR")
    rec.add_argument("--no-tracks", action="store_true",
                     help="for --format scene: ignore the clips' actor tracks")
    ev = bsub.add_parser(
        "eval", help="score every clip on held-out views; aggregate the metrics",
        description="Evaluate every clip (as splatnet eval does) into OUT_DIR/NAME.json, and "
                    "aggregate PSNR, SSIM, LPIPS and depth errors over the clips (mean, median, "
                    "worst clips) in OUT_DIR/summary.json and summary.md.")
    _common(ev)
    held = ev.add_mutually_exclusive_group()
    held.add_argument("--holdout-frames", type=int_list, default=None, metavar="F[,F...]",
                      help="hold out these frames (default: the clip's target cameras, else its "
                           "middle frame)")
    held.add_argument("--holdout-cameras", type=name_list, default=None, metavar="NAMES",
                      help="hold out these cameras (all frames)")
    ev.add_argument("--size", type=size_hw, default=None, metavar="HxW",
                    help="size the held-out views are scored at (default native)")
    ev.add_argument("--network-size", type=size_hw, default=None, metavar="HxW",
                    help="size the network runs at (default: as splatnet eval)")
    ev.add_argument("--lpips-weights", type=_path_list, default=None, metavar="PATH[,PATH]",
                    help="score LPIPS with local weights (as splatnet eval --lpips-weights)")
    ev.add_argument("--lpips-net", choices=["alex", "vgg"], default=None,
                    help="which LPIPS network, when the weights hold both")


def _path_list(text: str) -> list[str]:
    from splatnet.cli.eval import _path_list as parse

    return parse(text)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="clip directories, globs ('clips/*', 'logs/**/seg_*') or manifest files: "
                        "one clip path per line, or JSON lines {\"clip\": PATH, ...options}")
    p.add_argument("--out-dir", required=True,
                   help="output directory (created if missing): the outputs, results.jsonl, "
                        "summary.json and summary.md")
    p.add_argument("--no-ego-masks", action="store_true",
                   help="do not estimate where a clip without camera masks shows the ego's own "
                        "body (as splatnet reconstruct / eval --no-ego-masks)")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: worker processes on this machine (default); ray: actors on a "
                        "Ray cluster (pip install 'splatnet[cluster]')")
    p.add_argument("--address", default=None,
                   help="Ray: 'auto' or HOST:PORT of a running cluster (default: start a local "
                        "one for this run)")
    p.add_argument("--workers", type=int, default=1,
                   help="workers, each with the model loaded once (default 1)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per worker, and the CPUs each Ray worker reserves "
                        "(default: this machine's cores / --workers; 1 on a joined Ray cluster)")
    p.add_argument("--gpus-per-task", type=float, default=0.0, metavar="G",
                   help="Ray: GPUs each worker reserves, with --device cuda (0.5: two workers "
                        "per GPU; default 0)")
    p.add_argument("--retries", type=int, default=2,
                   help="times a clip is given again when the worker running it dies "
                        "(killed, out of memory; default 2)")
    p.add_argument("--retry-failed", action="store_true",
                   help="run clips again whose earlier run in this --out-dir failed")
    p.add_argument("--force", action="store_true",
                   help="replace existing outputs that are not this --out-dir's complete results "
                        "of the same settings")
    p.add_argument("--checkpoint", default=None,
                   help="model file or checkpoint directory (default: the shipped model)")
    p.add_argument("--device", type=device_arg, default="cpu",
                   help="cpu, cuda or cuda:N for each worker's network (default cpu)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the full traceback when a command fails")
    p.set_defaults(func=run)


def _spec(args: argparse.Namespace):
    from splatnet.batch import BatchSpec
    from splatnet.errors import ValidationError

    threads = args.threads
    if threads is None:
        threads = 1 if args.address else max(1, (os.cpu_count() or 1) // max(1, args.workers))
    if threads < 1:
        raise ValidationError(f"--threads: expected an integer >= 1, got {threads}")
    if args.batch_command == "reconstruct":
        if args.no_tracks and args.format != "scene":
            raise ValidationError("--no-tracks applies to --format scene only")
        f = args.frames
        defaults = {"frames": None if f is None else
                    f"{'' if f.start is None else f.start}:{'' if f.stop is None else f.stop}",
                    "cameras": args.cameras, "size": args.size}
        return BatchSpec("reconstruct", checkpoint=args.checkpoint, device=args.device,
                         format=args.format, refine=args.refine, use_tracks=not args.no_tracks,
                         use_lidar=not args.no_lidar, use_ego_masks=not args.no_ego_masks,
                         threads=threads,
                         defaults={k: v for k, v in defaults.items() if v is not None})
    if args.lpips_net and not args.lpips_weights:
        raise ValidationError("--lpips-net needs --lpips-weights")
    defaults = {"holdout_frames": args.holdout_frames, "holdout_cameras": args.holdout_cameras,
                "size": args.size, "network_size": args.network_size}
    return BatchSpec("eval", checkpoint=args.checkpoint, device=args.device, format="json",
                     lpips_weights=tuple(args.lpips_weights or ()), lpips_net=args.lpips_net,
                     use_ego_masks=not args.no_ego_masks, threads=threads,
                     defaults={k: v for k, v in defaults.items() if v is not None})


def run(args: argparse.Namespace) -> int:
    from splatnet.batch import run_batch

    result = run_batch(args.inputs, args.out_dir, _spec(args), engine=args.engine,
                       workers=args.workers, address=args.address,
                       gpus_per_task=args.gpus_per_task, retries=args.retries,
                       retry_failed=args.retry_failed, force=args.force, progress=not args.quiet)
    s = result.summary
    if args.json:
        print(json.dumps(s))
        return 1 if s["failed"] else 0
    r = s["this_run"]
    rate = f", {r['clips_per_minute']:.1f} clips/min" if r["clips_per_minute"] else ""
    print(f"{s['clips']} clips: {s['ok']} ok, {s['failed']} failed (this run: {r['processed']} "
          f"processed in {r['wall_seconds']:.1f} s{rate}; {r['skipped_complete']} already complete"
          + (f"; {r['failed_earlier_not_retried']} failed earlier, not retried (--retry-failed)"
             if r["failed_earlier_not_retried"] else "") + ")")
    for key, m in s.get("metrics", {}).items():
        print(f"  {key:<21} mean {m['mean']:.4f}  median {m['median']:.4f}  "
              f"min {m['min']:.4f}  max {m['max']:.4f}  ({m['clips']} clips)")
    out = os.path.abspath(args.out_dir)
    print(f"results: {os.path.join(out, 'results.jsonl')}; summary: "
          f"{os.path.join(out, 'summary.json')}, {os.path.join(out, 'summary.md')}")
    return 1 if s["failed"] else 0
