"""``splatnet render SPLATS --clip CLIP -o DIR``: render a clip's camera trajectory to PNGs and MP4."""

from __future__ import annotations

import argparse
import sys
import time

from splatnet.cli._args import (
    device_arg,
    frame_ids,
    frame_range,
    frame_rate,
    lateral_metres,
    name_list,
    resolve_device,
    size_hw,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "render", help="render splats along a clip's camera trajectory (PNG + MP4)",
        description="Render a Gaussian PLY from the poses of a clip's cameras, optionally shifted "
                    "sideways (the usual novel-view test in driving), writing per-frame PNGs with "
                    "RGB and colour-mapped depth side by side, and an MP4 of them.")
    p.add_argument("splats", help="a 3DGS .ply file")
    p.add_argument("--clip", required=True, help="clip directory whose camera poses to follow")
    p.add_argument("-o", "--out", required=True, help="output directory (must not exist unless --force)")
    p.add_argument("--cameras", type=name_list, default=None, metavar="NAMES",
                   help="comma-separated camera names (default: the rig cameras)")
    p.add_argument("--frames", type=frame_range, default=None, metavar="A:B",
                   help="frame range, Python slice style (default: all)")
    p.add_argument("--size", type=size_hw, default=None, metavar="HxW",
                   help="render size (default: each camera's native size)")
    p.add_argument("--shift-lateral", type=lateral_metres, default=0.0, metavar="METRES",
                   help="move every camera sideways along the ego's left axis (negative = right; "
                        "at most 1000 m either way)")
    p.add_argument("--device", type=device_arg, default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--fps", type=frame_rate, default=10.0,
                   help="video frame rate, 0.1 to 240 (default 10)")
    p.add_argument("--no-video", action="store_true", help="write PNGs only")
    p.add_argument("--force", action="store_true", help="replace an existing output directory")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import imageio.v3 as iio
    import numpy as np
    import torch
    from tqdm import tqdm

    from splatnet import Gaussians
    from splatnet.clip import Clip
    from splatnet.io.atomic import atomic_directory
    from splatnet.pipeline.preview import mosaic, render_clip_trajectory

    if not args.no_video:  # before rendering anything
        _video_support()
    device = resolve_device(args.device)
    g = Gaussians.load_ply(args.splats)
    clip = Clip.load(args.clip)
    frames = frame_ids(args.frames, clip.num_frames)
    cameras = args.cameras or clip.rig_camera_names
    t0 = time.perf_counter()
    steps: list[np.ndarray] = []
    bar = tqdm(total=len(frames), desc="render", unit="frame", file=sys.stderr, dynamic_ncols=True,
               disable=args.quiet)
    with bar, atomic_directory(args.out, force=args.force) as tmp:
        (tmp / "frames").mkdir()
        current: list = []
        for item in render_clip_trajectory(g, clip, frames=frames, cameras=cameras, size=args.size,
                                           shift_lateral=args.shift_lateral, device=device):
            iio.imwrite(tmp / "frames" / f"{item.frame:04d}_{item.camera}.png", item.side_by_side())
            current.append(item)
            if len(current) == len(cameras):
                steps.append(mosaic(current))
                current = []
                bar.update(1)
        iio.imwrite(tmp / "preview.png", steps[0])
        if not args.no_video:
            _write_video(tmp / "video.mp4", steps, args.fps)
    del torch
    print(f"wrote {len(frames) * len(cameras)} views of {g.num_gaussians} Gaussians to {args.out} "
          f"in {time.perf_counter() - t0:.1f} s (frames/, preview.png"
          f"{'' if args.no_video else ', video.mp4'})")
    return 0


def _video_support() -> None:
    from splatnet._optional import MissingDependencyError, require

    try:
        require("imageio_ffmpeg", "writing the MP4 video", extra="video")
    except MissingDependencyError as exc:
        raise MissingDependencyError(f"{exc}, or pass --no-video") from exc


def _write_video(path, steps, fps: float) -> None:
    import imageio.v2 as imageio

    _video_support()
    h, w = steps[0].shape[:2]
    with imageio.get_writer(path, fps=fps, codec="libx264", quality=8, macro_block_size=1,
                            ffmpeg_log_level="error", pixelformat="yuv420p") as writer:
        for s in steps:
            writer.append_data(s[: h - h % 2, : w - w % 2])
