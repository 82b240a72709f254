"""``splatnet render``: splats along a clip's camera trajectory (``PLY --clip CLIP -o DIR``: PNGs and
an MP4), or a scene replayed along an ego path (``SCENE.scene -o DIR|OUT.mp4``: RGB, depth, LiDAR)."""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from pathlib import Path

from splatnet.cli._args import (
    check_output_dir,
    check_output_file,
    device_arg,
    float_in,
    frame_ids,
    frame_range,
    frame_rate,
    lateral_metres,
    name_list,
    resolve_device,
    size_hw,
)

#: Options that only a .scene input takes, and only a PLY input takes (named in errors).
SCENE_OPTIONS = ("trajectory", "lane_change", "speed", "depth", "depth_format", "lidar", "lidar_beams",
                 "lidar_fov", "lidar_azimuths", "lidar_position", "lidar_max_range")
PLY_OPTIONS = ("clip", "no_video")
#: ``--speed``: 0 parks the ego; 100 times is far beyond any replay.
speed_factor = float_in(0.0, 100.0, " (times the logged speed)")
lidar_range = float_in(0.1, 10000.0, " m")


def _int_in(lo: int, hi: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = lo - 1
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"expected a whole number from {lo} to {hi}, got {text!r}")
        return v

    return parse


def _numbers(text: str, n: int, what: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        vals = []
    if len(vals) != n or not all(math.isfinite(v) for v in vals):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return vals


def lane_change(text: str) -> tuple[float, float, float]:
    """``D:T0:T1``: metres to the left (negative = right), start and end times in seconds."""
    try:
        d, t0, t1 = (float(v) for v in text.split(":"))
    except ValueError:
        d = t0 = t1 = math.nan
    if not all(math.isfinite(v) for v in (d, t0, t1)):
        raise argparse.ArgumentTypeError(f"expected D:T0:T1 (metres left, start and end seconds), "
                                         f"got {text!r}")
    if abs(d) > 1000:
        raise argparse.ArgumentTypeError(f"the distance must be at most 1000 m either way, got {d:g}")
    if not t1 > t0:
        raise argparse.ArgumentTypeError(f"T1 ({t1:g} s) must be after T0 ({t0:g} s)")
    return d, t0, t1


def lidar_fov(text: str) -> tuple[float, float]:
    lo, hi = _numbers(text, 2, "LOW,HIGH elevations in degrees such as -25,15")
    if not -90 <= lo <= hi <= 90:
        raise argparse.ArgumentTypeError(f"expected -90 <= LOW <= HIGH <= 90 degrees, got {text!r}")
    return lo, hi


def lidar_position(text: str) -> tuple[float, float, float]:
    x, y, z = _numbers(text, 3, "X,Y,Z metres in the ego frame such as 0,0,1.8")
    if max(abs(x), abs(y), abs(z)) > 100:
        raise argparse.ArgumentTypeError(f"a sensor more than 100 m from the ego origin: {text!r}")
    return x, y, z


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "render", help="render splats along a clip's cameras, or replay a .scene along an ego path",
        description="Two inputs. A Gaussian PLY with --clip: rendered from the poses of the clip's "
                    "cameras, optionally shifted sideways (the usual novel-view test in driving), "
                    "written as per-frame PNGs of RGB and colour-mapped depth side by side and an "
                    "MP4 of them. A .scene: replayed along an ego path (its own log, --trajectory, "
                    "--shift-lateral, --lane-change or --speed) from its rig, the actors at each "
                    "frame's time; -o DIR writes RGB PNGs, with --depth depth maps and with "
                    "--lidar simulated LiDAR sweeps, and index.json; -o OUT.mp4 writes a video of "
                    "RGB and depth side by side and OUT.json (docs/scenes.md).")
    p.add_argument("splats", metavar="INPUT", help="a 3DGS .ply file (with --clip) or a .scene file")
    p.add_argument("--clip", default=None, help="PLY input: clip directory whose camera poses to follow")
    p.add_argument("-o", "--out", required=True,
                   help="output directory (must not exist unless --force); a .scene may also "
                        "write OUT.mp4 (and OUT.json)")
    p.add_argument("--cameras", type=name_list, default=None, metavar="NAMES",
                   help="comma-separated camera names (default: the rig cameras)")
    p.add_argument("--frames", type=frame_range, default=None, metavar="A:B",
                   help="frame range, Python slice style (default: all); for a .scene, the "
                        "trajectory's poses")
    p.add_argument("--size", type=size_hw, default=None, metavar="HxW",
                   help="render size (default: each camera's native size)")
    path = p.add_mutually_exclusive_group()
    path.add_argument("--shift-lateral", type=lateral_metres, default=None, metavar="METRES",
                      help="move every camera sideways along the ego's left axis (negative = right; "
                           "at most 1000 m either way)")
    path.add_argument("--trajectory", default=None, metavar="PATH.json",
                      help='.scene: the ego poses of a trajectory file {"poses": [{"t": seconds, '
                           '"ego_to_world": 4x4}, ...]} (docs/scenes.md)')
    path.add_argument("--lane-change", type=lane_change, default=None, metavar="D:T0:T1",
                      help=".scene: the logged path moving D metres left (negative = right; write "
                           "--lane-change=-3.5:1:3) between T0 and T1 seconds, smoothly (cosine)")
    path.add_argument("--speed", type=speed_factor, default=None, metavar="K",
                      help=".scene: the logged path driven K times as fast, sampled at --fps, "
                           "actors at their logged times (0 parks the ego)")
    p.add_argument("--depth", action="store_true",
                   help=".scene: also write each camera's depth (camera z in metres, 0 = nothing)")
    p.add_argument("--depth-format", choices=("png", "npy"), default=None,
                   help="png: 16-bit, 1/256 m a unit as clips store depth (default); npy: float32")
    p.add_argument("--lidar", action="store_true",
                   help=".scene: also write a simulated LiDAR sweep per frame (ego frame, .npy)")
    p.add_argument("--lidar-beams", type=_int_in(1, 4096), default=None, metavar="N",
                   help="beams (elevations), default 32")
    p.add_argument("--lidar-fov", type=lidar_fov, default=None, metavar="LOW,HIGH",
                   help="lowest and highest beam elevation in degrees, default -25,15")
    p.add_argument("--lidar-azimuths", type=_int_in(1, 65536), default=None, metavar="N",
                   help="firing directions per turn, default 1024")
    p.add_argument("--lidar-position", type=lidar_position, default=None, metavar="X,Y,Z",
                   help="sensor position in the ego frame, metres, default 0,0,1.8 (axes as the ego's)")
    p.add_argument("--lidar-max-range", type=lidar_range, default=None, metavar="M",
                   help="drop returns beyond M metres, default 100")
    p.add_argument("--device", type=device_arg, default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--fps", type=frame_rate, default=10.0,
                   help="video frame rate, 0.1 to 240 (default 10); with --speed also the rate the "
                        "path is sampled at")
    p.add_argument("--no-video", action="store_true", help="PLY input: write PNGs only")
    p.add_argument("--force", action="store_true", help="replace an existing output")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from splatnet.errors import ValidationError

    scene = Path(args.splats).suffix.lower() == ".scene"
    wrong = [o for o in (PLY_OPTIONS if scene else SCENE_OPTIONS) if _given(args, o)]
    if wrong:
        flag = "--" + wrong[0].replace("_", "-")
        raise ValidationError(f"{flag}: only for a {'PLY' if scene else '.scene'} input; "
                              f"{args.splats} is a {'.scene' if scene else 'PLY'} "
                              "(splatnet render --help)")
    if scene:
        return _run_scene(args)
    if args.clip is None:
        raise ValidationError(f"--clip: required to render {args.splats} (a PLY follows a clip's "
                              "cameras; a .scene follows its own log)")
    return _run_ply(args)


def _given(args: argparse.Namespace, option: str) -> bool:
    v = getattr(args, option)
    return v not in (None, False)


def _run_ply(args: argparse.Namespace) -> int:
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
                                           shift_lateral=args.shift_lateral or 0.0, device=device):
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


# ---------------------------------------------------------------------------------------- scenes
def _run_scene(args: argparse.Namespace) -> int:
    from splatnet.errors import ValidationError

    out = Path(args.out)
    video = out.suffix.lower() == ".mp4"
    for opt in ("lidar_beams", "lidar_fov", "lidar_azimuths", "lidar_position", "lidar_max_range"):
        if _given(args, opt) and not args.lidar:
            raise ValidationError(f"--{opt.replace('_', '-')}: sets up the simulated LiDAR; add --lidar")
    if args.depth_format is not None and not args.depth:
        raise ValidationError("--depth-format: chooses how --depth is written; add --depth")
    if video and (args.depth or args.lidar):
        raise ValidationError(f"--{'depth' if args.depth else 'lidar'}: writes files per frame; give "
                              f"-o a directory instead of {out} (a video shows depth beside RGB "
                              "already)")
    index = out.with_suffix(".json")
    if video:  # every output checked before any work
        _video_support()
        check_output_file(out, args.force, ".mp4")
        check_output_file(index, args.force)
    else:
        if out.suffix.lower() in (".png", ".npy", ".json", ".avi", ".mov", ".mkv", ".gif", ".webm"):
            raise ValidationError(f"-o {out}: for a .scene give a directory or an .mp4 file")
        check_output_dir(out, args.force)
    return _replay_scene(args, out, index if video else None)


def _replay_scene(args: argparse.Namespace, out: Path, index: Path | None) -> int:
    import torch
    from tqdm import tqdm

    from splatnet.errors import ValidationError
    from splatnet.scene import EgoTrajectory, LidarSensor, Scene, replay

    device = resolve_device(args.device)
    scene = Scene.load(args.splats, device)
    log = EgoTrajectory.from_scene(scene)
    if args.trajectory is not None:
        option, traj = f"--trajectory {args.trajectory}", EgoTrajectory.load(args.trajectory)
        described = {"source": "file", "path": str(args.trajectory)}
    elif args.shift_lateral is not None:
        option, traj = "--shift-lateral", log.shifted_lateral(args.shift_lateral)
        described = {"source": "shift_lateral", "metres": args.shift_lateral}
    elif args.lane_change is not None:
        d, t0, t1 = args.lane_change
        option, traj = "--lane-change", log.lane_change(d, t0, t1)
        described = {"source": "lane_change", "metres": d, "t0": t0, "t1": t1}
    elif args.speed is not None:
        option, traj = "--speed", log.speed_scaled(args.speed, args.fps)
        described = {"source": "speed", "factor": args.speed, "rate": args.fps}
    else:
        option, traj, described = str(args.splats), log, {"source": "log"}
    ids = list(range(len(traj)))
    if args.frames is not None:
        ids = ids[args.frames]
        if not ids:
            raise ValidationError(f"--frames: selects none of the trajectory's {len(traj)} pose(s)")
    names = args.cameras or scene.rig.names
    for n in names:
        if n not in scene.rig.names:
            raise ValidationError(f"--cameras: no camera {n!r} in {args.splats} (cameras: "
                                  f"{', '.join(scene.rig.names)})")
    rig = [scene.rig.camera(n) for n in names]
    if index is not None and args.size is None and len({(c.width, c.height) for c in rig}) > 1:
        raise ValidationError("--size: the cameras have different sizes; a video needs one (give "
                              "--size HxW)")
    lidar = None
    if args.lidar:
        lidar = LidarSensor.uniform(args.lidar_beams or 32, args.lidar_fov or (-25.0, 15.0),
                                    args.lidar_azimuths or 1024,
                                    position=args.lidar_position or (0.0, 0.0, 1.8),
                                    max_range=args.lidar_max_range or 100.0)
    try:
        frames = replay(scene, traj, cameras=names, size=args.size, lidar=lidar, indices=ids)
    except ValidationError as exc:
        raise ValidationError(f"{option}: {exc}") from None
    t_start = time.perf_counter()
    bar = tqdm(total=len(ids), desc="replay", unit="frame", file=sys.stderr, dynamic_ncols=True,
               disable=args.quiet)
    meta = {"format": "splatnet-replay", "version": 1, "scene": str(args.splats),
            "trajectory": described,
            "cameras": [_camera_json(c, args.size) for c in rig]}
    with bar, torch.no_grad():
        if index is None:
            summary = _write_directory(out, args, frames, meta, lidar, bar)
        else:
            summary = _write_mp4(out, index, args, frames, meta, bar)
    t_a, t_b = float(traj.times[ids[0]]), float(traj.times[ids[-1]])
    print(f"replayed {args.splats} along {_describe(described)}: {len(ids)} frame(s) x {len(names)} "
          f"camera(s), t = {t_a:.3f}..{t_b:.3f} s, to {out} in {time.perf_counter() - t_start:.1f} s "
          f"({summary})")
    return 0


def _describe(d: dict) -> str:
    kind = d["source"]
    if kind == "log":
        return "its logged path"
    if kind == "file":
        return d["path"]
    if kind == "shift_lateral":
        return f"its logged path shifted {d['metres']:g} m left"
    if kind == "lane_change":
        return f"a lane change of {d['metres']:g} m from {d['t0']:g} to {d['t1']:g} s"
    return f"its logged path at {d['factor']:g}x speed"


def _camera_json(cam, size) -> dict:
    import numpy as np

    h, w = size if size is not None else (cam.height, cam.width)
    K = np.diag([w / cam.width, h / cam.height, 1.0]) @ cam.K
    return {"name": cam.name, "width": int(w), "height": int(h), "K": K.tolist(),
            "cam_to_ego": cam.cam_to_ego.tolist()}


def _write_directory(out: Path, args, frames, meta: dict, lidar, bar) -> str:
    import json

    import imageio.v3 as iio
    import numpy as np

    from splatnet.clip._checks import DEFAULT_DEPTH_SCALE
    from splatnet.clip._files import encode_png_gray
    from splatnet.io.atomic import atomic_directory
    from splatnet.pipeline.preview import to_uint8

    png = args.depth_format != "npy"
    meta["depth"] = None if not args.depth else {
        "format": "png16" if png else "npy", "scale": DEFAULT_DEPTH_SCALE if png else 1.0,
        "unit": "metres of camera z per stored unit; 0 = no depth (alpha < 0.5)"}
    meta["lidar"] = None if lidar is None else lidar.to_json()
    entries, too_far, points = [], 0, 0
    with atomic_directory(out, force=args.force) as tmp:
        for fr in frames:
            entry = {"index": fr.index, "t": fr.t, "ego_to_world": fr.ego_to_world.tolist(),
                     "images": {}}
            for v in fr.views:
                rel = f"images/{v.camera}/{fr.index:06d}.png"
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                iio.imwrite(tmp / rel, to_uint8(v.rgb))
                entry["images"][v.camera] = rel
                if args.depth:
                    depth = np.where(v.alpha[..., 0].numpy() >= 0.5, v.depth[..., 0].numpy(), 0.0)
                    rel = f"depths/{v.camera}/{fr.index:06d}.{'png' if png else 'npy'}"
                    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                    if png:
                        q = np.rint(depth.astype(np.float64) / DEFAULT_DEPTH_SCALE)
                        too_far += int((q > 65535).sum())
                        q[q > 65535] = 0  # beyond 256 m: stored as no depth, as clips do
                        (tmp / rel).write_bytes(encode_png_gray(q.astype(np.uint16)))
                    else:
                        np.save(tmp / rel, depth.astype(np.float32), allow_pickle=False)
                    entry.setdefault("depths", {})[v.camera] = rel
            if fr.lidar is not None:
                rel = f"lidar/{fr.index:06d}.npy"
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                np.save(tmp / rel, fr.lidar, allow_pickle=False)
                entry["lidar"], entry["lidar_points"] = rel, int(len(fr.lidar))
                points += len(fr.lidar)
            entries.append(entry)
            bar.update(1)
        meta["frames"] = entries
        (tmp / "index.json").write_text(json.dumps(meta, indent=1, allow_nan=False) + "\n")
    parts = ["images/"] + (["depths/"] if args.depth else []) + (["lidar/"] if lidar else [])
    summary = ", ".join(parts + ["index.json"])
    if lidar is not None:
        summary += f"; {points / len(entries):.0f} LiDAR points a sweep"
    if too_far:
        summary += (f"; {too_far} depth pixel(s) beyond {65535 * DEFAULT_DEPTH_SCALE:.0f} m stored "
                    "as 0 (--depth-format npy keeps them)")
    return summary


def _write_mp4(out: Path, index: Path, args, frames, meta: dict, bar) -> str:
    import json
    import os
    import tempfile

    from splatnet.io.atomic import atomic_write_text
    from splatnet.pipeline.preview import PreviewFrame, colorize_depth, mosaic, to_uint8

    entries = []
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as tmp:
        part = Path(tmp) / "video.mp4"
        with _video_writer(part, args.fps) as append:
            for fr in frames:
                step = [PreviewFrame(fr.index, v.camera, to_uint8(v.rgb),
                                     colorize_depth(v.depth[..., 0].numpy(), v.alpha[..., 0].numpy()))
                        for v in fr.views]
                append(mosaic(step))
                entries.append({"index": fr.index, "t": fr.t, "ego_to_world": fr.ego_to_world.tolist()})
                bar.update(1)
        meta.update(video=out.name, fps=args.fps,
                    layout="per frame, the cameras stacked top to bottom, each as RGB | depth",
                    frames=entries)
        atomic_write_text(index, json.dumps(meta, indent=1, allow_nan=False) + "\n")
        os.replace(part, out)
    return f"{out.name}, {index.name}"


def _video_support() -> None:
    from splatnet._optional import MissingDependencyError, require

    try:
        require("imageio_ffmpeg", "writing the MP4 video", extra="video")
    except MissingDependencyError as exc:
        raise MissingDependencyError(f"{exc}, or pass --no-video") from exc


def _write_video(path, steps, fps: float) -> None:
    with _video_writer(path, fps) as append:
        for s in steps:
            append(s)


@contextlib.contextmanager
def _video_writer(path, fps: float):
    """An H.264 MP4 at ``path``; yields ``append(image)``. Every image is cropped to the first's
    even height and width (what yuv420p needs)."""
    import imageio.v2 as imageio

    _video_support()
    shape = []
    with imageio.get_writer(path, fps=fps, codec="libx264", quality=8, macro_block_size=1,
                            ffmpeg_log_level="error", pixelformat="yuv420p") as writer:
        def append(image) -> None:
            if not shape:
                shape.extend(image.shape[:2])
            h, w = shape
            writer.append_data(image[: h - h % 2, : w - w % 2])

        yield append
