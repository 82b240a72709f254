"""``splatnet reconstruct CLIP -o OUT``: one network pass from a log clip to viewer-ready splats."""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from ..errors import ValidationError
from ._args import check_output_file, frame_ids, frame_range, name_list, size_hw


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reconstruct", help="reconstruct Gaussian splats from log clips in one network pass",
        description="Load a clip (N cameras x T frames, calibration, ego poses, optional LiDAR), "
                    "run the network once and write a PLY (or .splat) that opens in standard "
                    "3DGS viewers. Several clips: the model loads once, the next clip is decoded "
                    "while the network runs, and a bad clip is reported and skipped (exit 1).")
    p.add_argument("clips", nargs="+", metavar="CLIP", help="clip directories")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("-o", "--out", help="output file for one clip (.ply or .splat)")
    out.add_argument("--out-dir", help="output directory for one or more clips (CLIPNAME.FORMAT)")
    p.add_argument("--checkpoint", default=None,
                   help="model file or checkpoint directory (default: the shipped model)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--frames", type=frame_range, default=None, metavar="A:B",
                   help="context frames, Python slice style (default: all)")
    p.add_argument("--cameras", type=name_list, default=None, metavar="NAMES",
                   help="comma-separated context camera names (default: the rig cameras)")
    p.add_argument("--size", type=size_hw, default=None, metavar="HxW",
                   help="network input size (default: native, rounded down to the stride)")
    p.add_argument("--format", choices=["ply", "splat"], default=None,
                   help="output format (default: from the -o suffix, else ply)")
    p.add_argument("--refine", type=int, default=0, metavar="STEPS",
                   help="optimisation steps on the context views after the network (default 0)")
    p.add_argument("--no-lidar", action="store_true", help="ignore the clip's LiDAR")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def _output_path(args: argparse.Namespace, clip: str) -> tuple[Path, str]:
    if args.out is not None:
        out = Path(args.out)
        fmt = args.format or ("splat" if out.suffix.lower() == ".splat" else "ply")
        return out, fmt
    fmt = args.format or "ply"
    return Path(args.out_dir) / f"{Path(clip).resolve().name}.{fmt}", fmt


def run(args: argparse.Namespace) -> int:
    if args.out is not None and len(args.clips) > 1:
        raise ValidationError("-o/--out takes one clip; use --out-dir DIR for several")
    if args.refine < 0:
        raise ValidationError(f"--refine must be >= 0, got {args.refine}")
    if args.out_dir is not None:
        Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    if args.out is not None:  # one clip: fail before loading anything
        check_output_file(_output_path(args, args.clips[0])[0], args.force)

    import torch

    from ..checkpoint import load_model
    from ..feedforward import _device

    device = _device(args.device)
    t0 = time.perf_counter()
    model = load_model(args.checkpoint, device=device)
    model_seconds = time.perf_counter() - t0
    stride = int(getattr(model, "stride", 1))

    from tqdm import tqdm

    results: list[dict] = []
    # One bar over clips when there are several (a single clip takes seconds; --refine has its own
    # bar). Result lines go through tqdm.write so they do not tear the bar.
    bar = tqdm(total=len(args.clips), desc="reconstruct", unit="clip", file=sys.stderr,
               dynamic_ncols=True, disable=args.quiet or len(args.clips) == 1)
    pool = ThreadPoolExecutor(max_workers=1)
    pending: Future | None = None

    def submit(i: int) -> Future | None:
        return pool.submit(_load, args.clips[i], args, stride) if i < len(args.clips) else None

    try:
        pending = submit(0)
        for i, clip_path in enumerate(args.clips):
            future, pending = pending, None
            try:
                out_path, fmt = _output_path(args, clip_path)
                check_output_file(out_path, args.force)
                inputs = future.result()
                pending = submit(i + 1)  # decode the next clip while the network runs
                summary = _reconstruct_one(clip_path, inputs, model, device, out_path, fmt, args)
            except Exception as exc:  # noqa: BLE001 - one bad clip must not stop the others
                if pending is None:
                    pending = submit(i + 1)
                if len(args.clips) == 1:
                    raise
                summary = {"clip": clip_path, "ok": False, "error": " ".join(str(exc).split())}
                tqdm.write(f"splatnet reconstruct: {clip_path}: error: {summary['error']}",
                           file=sys.stderr)
            results.append(summary)
            bar.update(1)
            bar.set_postfix(failed=sum(not r["ok"] for r in results), refresh=False)
            del future
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()

    failed = sum(not r["ok"] for r in results)
    if args.json:
        doc = results[0] if args.out is not None else {
            "model_load_seconds": model_seconds, "clips": results, "failed": failed}
        print(json.dumps(doc))
    elif len(results) > 1:
        print(f"{len(results) - failed} of {len(results)} clips reconstructed"
              + (f", {failed} failed" if failed else ""))
    return 1 if failed else 0


def _load(clip_path: str, args: argparse.Namespace, stride: int):
    from ..clip import Clip
    from ..feedforward import _clip_path, prepare_inputs

    clip = Clip.load(_clip_path(clip_path))
    frames = frame_ids(args.frames, clip.num_frames) if args.frames is not None else None
    inputs = prepare_inputs(clip, stride, frames=frames, cameras=args.cameras, size=args.size,
                            use_lidar=not args.no_lidar)
    return clip, inputs


def _reconstruct_one(clip_path, loaded, model, device, out_path: Path, fmt: str,
                     args: argparse.Namespace) -> dict:
    from ..feedforward import run_network

    clip, inputs = loaded
    rec = run_network(inputs, model, device)
    g = rec.gaussians
    if args.refine:
        from ..optim import refine

        t0 = time.perf_counter()
        views = clip.views(frames=inputs.frames, cameras=inputs.camera_names, size=inputs.size)
        backgrounds = None
        if rec.sky is not None:  # refine against the network's sky, not black
            import torch

            with torch.no_grad():
                backgrounds = rec.sky.render(inputs.cameras.to(g.device))[0].to(views.images)
        g = refine(g, views, args.refine, progress=not args.quiet, backgrounds=backgrounds)
        rec.timings["refine"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    dropped = g.save_splat(out_path) if fmt == "splat" else g.save_ply(out_path)
    rec.timings["write"] = time.perf_counter() - t0
    summary = {"clip": str(clip_path), "ok": True, "output": str(out_path), "format": fmt,
               "gaussians": g.num_gaussians - dropped, "dropped_non_finite": dropped,
               "size": list(rec.size), "views": len(inputs.frames) * len(inputs.camera_names),
               "timings": {k: round(v, 4) for k, v in rec.timings.items()}}
    if not args.json:
        from tqdm import tqdm

        t = summary["timings"]
        parts = ", ".join(f"{k} {v:.2f} s" for k, v in t.items())
        tqdm.write(f"{clip_path} -> {out_path}: {summary['gaussians']} Gaussians "
                   f"({summary['views']} views at {rec.size[0]}x{rec.size[1]}); {parts}")
    return summary
