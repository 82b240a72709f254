"""``splatnet reconstruct CLIP -o OUT``: one network pass from a log clip to viewer-ready splats."""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from splatnet.batch.naming import clip_dir as _clip_dir
from splatnet.batch.naming import output_stems
from splatnet.cli._args import (
    check_output_file,
    device_arg,
    ego_cameras_text,
    frame_range,
    name_list,
    resolve_device,
    size_hw,
)
from splatnet.errors import ValidationError

FORMATS = {".ply": "ply", ".splat": "splat", ".scene": "scene"}  # output extension -> --format


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reconstruct", help="reconstruct Gaussian splats from log clips in one network pass",
        description="Load a clip (N cameras x T frames, calibration, ego poses, optional LiDAR), "
                    "run the network once and write a PLY (or .splat) that opens in standard "
                    "3DGS viewers, or a .scene: the 4D scene with one Gaussian group per tracked "
                    "actor, for splatnet info/export/edit/render (docs/scenes.md). Several clips: the "
                    "model loads once, the next clip is decoded "
                    "while the network runs, and a bad clip is reported and skipped (exit 1).")
    p.add_argument("clips", nargs="+", metavar="CLIP",
                   help="clip directories (or their clip.json)")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("-o", "--out", help="output file for one clip (.ply, .splat or .scene)")
    out.add_argument("--out-dir",
                     help="output directory for one or more clips: CLIPNAME.FORMAT, where clips of "
                          "the same name get their shortest distinguishing parent folders "
                          "(a/clip, b/clip -> a_clip, b_clip)")
    p.add_argument("--checkpoint", default=None,
                   help="model file or checkpoint directory (default: the shipped model)")
    p.add_argument("--device", type=device_arg, default="cpu",
                   help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--frames", type=frame_range, default=None, metavar="A:B",
                   help="context frames, Python slice style (default: all)")
    p.add_argument("--cameras", type=name_list, default=None, metavar="NAMES",
                   help="comma-separated context camera names (default: the rig cameras)")
    p.add_argument("--size", type=size_hw, default=None, metavar="HxW",
                   help="network input size (default: the clip's native size, or, when that is "
                        "larger than the model's working size, the working size's pixel count at "
                        "the clip's aspect ratio: measured best, docs/benchmarks.md)")
    p.add_argument("--format", choices=["ply", "splat", "scene"], default=None,
                   help="output format (default: from the -o extension, which must be .ply, "
                        ".splat or .scene and match --format; ply with --out-dir)")
    p.add_argument("--no-tracks", action="store_true",
                   help="for a .scene: ignore the clip's actor tracks (one background with the "
                        "network's per-Gaussian velocities)")
    p.add_argument("--refine", type=int, default=0, metavar="STEPS",
                   help="optimisation steps on the context views after the network (default 0); "
                        "for a .scene, each actor's Gaussians are refined in its box frame along "
                        "its fixed track")
    p.add_argument("--no-lidar", action="store_true",
                   help="ignore the clip's LiDAR (the network's sparse-depth input and, for a model "
                        "with lidar_fusion, the depth its Gaussians are moved to)")
    p.add_argument("--no-ego-masks", action="store_true",
                   help="do not estimate where a clip without camera masks shows the ego's own "
                        "body (hood, boot); by default those pixels are kept out of the Gaussians")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def _out_format(out: Path, fmt: str | None) -> str:
    """The format of ``-o OUT``: from its extension, which must agree with ``--format``."""
    ext = out.suffix.lower()
    if ext not in FORMATS:
        want = ".ply, .splat or .scene (the extension selects the format" + (
            f"; .{fmt} for --format {fmt})" if fmt else ")")
        raise ValidationError(f"-o {out}: the output name must end in {want}, got "
                              f"{ext or 'no extension'!r}")
    if fmt is not None and FORMATS[ext] != fmt:
        raise ValidationError(f"-o {out}: a {ext} name does not match --format {fmt}; name it "
                              f"{out.with_suffix('.' + fmt)} or drop --format (.ply, .splat or "
                              f".scene selects the format)")
    return FORMATS[ext]


def _out_dir(args: argparse.Namespace) -> Path:
    """``--out-dir`` as given, created if missing (``splatnet batch``'s check: a file in its
    place is one clear error)."""
    from splatnet.batch.run import prepare_out_dir

    prepare_out_dir(args.out_dir)
    return Path(args.out_dir)


def _outputs(args: argparse.Namespace) -> list[tuple[Path, str]]:
    """(path, format) per clip, every name unique within the run; no file is touched except the
    --out-dir folder, created."""
    if args.out is not None:
        out = Path(args.out)
        return [(out, _out_format(out, args.format))]
    fmt = args.format or "ply"
    stems = output_stems(args.clips)
    d = _out_dir(args)
    outputs = [(d / f"{stem}.{fmt}", fmt) for stem in stems]
    renamed = [(c, o) for c, (o, _), stem in zip(args.clips, outputs, stems)
               if stem != _clip_dir(c).name]
    if renamed and not args.quiet:
        print("splatnet reconstruct: clips share a name, so their outputs are: "
              + ", ".join(f"{c} -> {o}" for c, o in renamed), file=sys.stderr)
    return outputs


@contextlib.contextmanager
def stage_progress(desc: str, stages: Sequence[str], disable: bool
                   ) -> Iterator[Callable[[str], None]]:
    """A one-line status on stderr naming the stage a run is in, for runs of a few seconds with
    no other progress; yields ``start(stage)``. Nothing shows before the first stage starts (so an
    input refused up front is one line), and an error leaves the line as it stood."""
    bar = None
    done = 0
    tty = sys.stderr.isatty()

    def start(stage: str) -> None:
        nonlocal bar, done
        if disable:
            return
        if not tty:  # a log file: one plain line per stage, no carriage returns
            print(f"{desc}: {stage}", file=sys.stderr, flush=True)
            done = -1  # something was shown: say "done" at the end
            return
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=len(stages), desc=desc, file=sys.stderr, dynamic_ncols=True,
                       bar_format="{desc} ({n_fmt}/{total_fmt} stages) [{elapsed}]")
        i = stages.index(stage)
        if i > done:
            bar.update(i - done)
            done = i
        bar.set_description_str(f"{desc}: {stage}")

    try:
        yield start
        if done == -1:
            print(f"{desc}: done", file=sys.stderr, flush=True)
        if bar is not None:
            bar.update(len(stages) - done)
            bar.set_description_str(f"{desc}: done")
    finally:
        if bar is not None:
            bar.close()


def run(args: argparse.Namespace) -> int:
    if args.out is not None and len(args.clips) > 1:
        raise ValidationError("-o/--out takes one clip; use --out-dir DIR for several")
    if args.refine < 0:
        raise ValidationError(f"--refine must be >= 0, got {args.refine}")
    device = resolve_device(args.device)
    outputs = _outputs(args)  # names, formats and --out-dir checked before anything loads
    if args.no_tracks and not any(fmt == "scene" for _, fmt in outputs):
        raise ValidationError("--no-tracks applies to a .scene output only (-o NAME.scene or "
                              "--format scene)")
    single = len(args.clips) == 1
    first = args.clips[0]
    if single:  # one clip: fail on its output and its manifest before loading the model
        check_output_file(outputs[0][0], args.force)
        from splatnet.clip import Clip
        from splatnet.pipeline.feedforward import _clip_path

        first = Clip.load(_clip_path(args.clips[0]))

    import torch

    from splatnet.io.checkpoint import load_model

    t0 = time.perf_counter()
    model = load_model(args.checkpoint, device=device)
    model_seconds = time.perf_counter() - t0

    from tqdm import tqdm

    results: list[dict] = []
    # One bar over clips when there are several; one over the stages of a single clip (see
    # _reconstruct_one). Result lines go through tqdm.write so they do not tear the bar.
    bar = tqdm(total=len(args.clips), desc="reconstruct", unit="clip", file=sys.stderr,
               dynamic_ncols=True, disable=args.quiet or single)
    pool = ThreadPoolExecutor(max_workers=1)
    pending: Future | None = None

    def submit(i: int) -> Future | None:
        if i >= len(args.clips):
            return None
        return pool.submit(_load, first if i == 0 else args.clips[i], args, model)

    try:
        with stage_progress(f"reconstruct {_clip_dir(args.clips[0]).name}", _stages(args),
                            disable=args.quiet or not single) as stage:
            pending = submit(0)
            for i, clip_path in enumerate(args.clips):
                future, pending = pending, None
                try:
                    out_path, fmt = outputs[i]
                    check_output_file(out_path, args.force)
                    stage("decode images")
                    inputs = future.result()
                    pending = submit(i + 1)  # decode the next clip while the network runs
                    summary = _reconstruct_one(clip_path, inputs, model, device, out_path, fmt,
                                               args, stage)
                except Exception as exc:  # noqa: BLE001 - one bad clip must not stop the others
                    if pending is None:
                        pending = submit(i + 1)
                    if single:
                        raise
                    summary = {"clip": clip_path, "ok": False,
                               "error": " ".join(str(exc).split())}
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


def _stages(args: argparse.Namespace) -> list[str]:
    return ["decode images", "network + post-process", *(["refine"] if args.refine else []),
            "write"]


def _load(clip_or_path, args: argparse.Namespace, model):
    from splatnet.batch.work import decode

    return decode(clip_or_path, model, frames=args.frames, cameras=args.cameras, size=args.size,
                  use_lidar=not args.no_lidar, frames_option="--frames",
                  ego_masks="off" if args.no_ego_masks else "auto")


def _reconstruct_one(clip_path, loaded, model, device, out_path: Path, fmt: str,
                     args: argparse.Namespace, stage: Callable[[str], None]) -> dict:
    from splatnet.batch.work import reconstruct_to_file

    summary = reconstruct_to_file(clip_path, loaded, model, device, out_path, fmt,
                                  refine=args.refine, use_tracks=not args.no_tracks,
                                  force=args.force, progress=stage,
                                  refine_progress=not args.quiet)
    if not args.json:
        from tqdm import tqdm

        parts = ", ".join(f"{k} {v:.2f} s" for k, v in summary["timings"].items())
        views = f"{summary['views']} views at {summary['size'][0]}x{summary['size'][1]}"
        what = (f"{summary['gaussians']} Gaussians, background {summary['background']} + "
                f"{summary['actors']} actor group(s) ({views})" if fmt == "scene" else
                f"{summary['gaussians']} Gaussians ({views})")
        tqdm.write(f"{clip_path} -> {out_path}: {what}; {parts}")
        ego = summary.get("ego_masks")
        if ego and ego["masks"] == "estimated":
            tqdm.write("  the ego's own body, estimated and left out of the Gaussians: "
                       f"{ego_cameras_text(ego)} of the pixels (--no-ego-masks to keep it)")
    return summary
