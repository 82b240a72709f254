"""``splatnet synth DST --seed S``: write a synthetic driving clip.

Every clip lists its cars and pedestrians as actors (``car_<k>``, ``ped_<k>``; clip format 1.1);
``--target-offsets`` adds the rig seen from ego paths shifted sideways and ``--without-actors``
renders the same clip with some actors taken out (see :mod:`splatnet.clip.synth`).
"""

from __future__ import annotations

import argparse
import json
import time

from splatnet.cli._args import check_output_dir, float_in, name_list, size_hw
from splatnet.errors import ValidationError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth", help="generate a synthetic driving clip (procedural street, ray-cast)",
        description="Ray-cast a procedural street (road, buildings, parked and moving cars, "
                    "trees, sky) seen by a surround camera rig on a moving ego vehicle, and "
                    "write it as a clip with LiDAR, ground-truth depth, sky masks, car "
                    "velocities and every car's and pedestrian's exact box track (actors "
                    "car_<k> and ped_<k>). The same seed always gives the same clip.")
    p.add_argument("dst", help="output clip directory (must not exist unless --force); "
                               "with --count, the directory that receives the clips")
    p.add_argument("--seed", type=int, required=True, help="random seed (non-negative integer)")
    p.add_argument("--count", type=int, default=1,
                   help="write COUNT clips with seeds SEED..SEED+COUNT-1 as DST/seed_NNNNNN "
                        "(default 1: one clip at DST)")
    p.add_argument("--cameras", type=int, default=6, help="rig cameras round the car (default 6)")
    p.add_argument("--frames", type=int, default=3, help="time steps, 0.1 s apart (default 3)")
    p.add_argument("--size", type=size_hw, default=(256, 448), metavar="HxW",
                   help="image size, height x width (default 256x448)")
    p.add_argument("--targets", type=int, default=0,
                   help="extra target cameras off the rig, for supervision (default 0)")
    p.add_argument("--target-offsets", type=_offsets, default=[], metavar="M[,M...]",
                   help="for each offset, every rig camera shifted sideways by that many metres "
                        "at every frame, as extra target cameras: the rig seen from an ego path "
                        "moved along the ego's y axis (positive = left, negative = right; the "
                        "ego's left/right as it drives). Named <camera>.off<M> and "
                        "<camera>.offm<M> for minus, to the millimetre, e.g. cam_front.off1.5, "
                        "cam_front.offm2, cam_front.off0. Up to 16 offsets within 20 m; write "
                        "negative lists with '=': --target-offsets=-1,1")
    p.add_argument("--without-actors", type=name_list, default=[], metavar="ID[,ID...]",
                   help="render the same clip (same seed and options) with these actors "
                        "(car_<k>, ped_<k>, as the full clip's actors list names them) taken out "
                        "of the street: images, their shadows, depths, sky masks, LiDAR and the "
                        "actors list lose them; nothing else changes. Not with --count")
    p.add_argument("--frame-interval", type=float_in(0.001, 10.0, " s"), default=0.1, metavar="S",
                   help="seconds between frames, up to 10 (default 0.1)")
    p.add_argument("--no-lidar", action="store_true", help="skip the LiDAR sweeps")
    p.add_argument("--no-shadows", action="store_true", help="skip shadow rays (faster)")
    p.add_argument("--jpeg-quality", type=int, default=90, help="JPEG quality (default 90)")
    p.add_argument("--depth-format", choices=["png16", "npy"], default="png16",
                   help="depth storage: 16-bit PNG in 1/256 m (default) or float32 .npy")
    p.add_argument("--image-format", choices=["jpg", "png"], default="jpg",
                   help="image storage (default jpg at --jpeg-quality; png is lossless)")
    p.add_argument("--realism", choices=["none", "real", "varied"], default="none",
                   help="camera effects and scene variety (default none: clean renders). real: "
                        "auto exposure, per-camera exposure and white balance, vignetting, "
                        "sensor noise, 5 ms motion blur, JPEG 85, the ego's hood (masked) in the "
                        "front and back cameras, varied sky, textures, speeds, camera heights, "
                        "pitch and roll; varied: real with 3-8 cameras of 55-120 deg hfov "
                        "(ignores --cameras). Values: splatnet.clip.synth.realism.PRESETS")
    p.add_argument("--realism-set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override one realism field (repeatable), e.g. vignetting=0.3, "
                        "hood_cameras=cam_front,cam_back, ego_speed=5,10, rig_cameras=none; "
                        "fields: those of splatnet.clip.synth.Realism")
    p.add_argument("--force", action="store_true", help="replace an existing clip at DST")
    p.add_argument("--overwrite", dest="force", action="store_true", help=argparse.SUPPRESS)  # old
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from splatnet.clip.synth import generate, parse_realism

    realism = parse_realism(args.realism, args.realism_set)
    if not 1 <= args.jpeg_quality <= 100:
        raise ValidationError(f"--jpeg-quality must be in [1, 100], got {args.jpeg_quality}")
    if args.count < 1:
        raise ValidationError(f"--count must be at least 1, got {args.count}")
    if args.without_actors and args.count > 1:
        raise ValidationError("--without-actors names the actors of one seed's clip; use it "
                              "without --count")
    jobs = [(Path(args.dst), args.seed)] if args.count == 1 else [
        (Path(args.dst) / f"seed_{s:06d}", s) for s in range(args.seed, args.seed + args.count)]
    for dst, _ in jobs:  # every destination before generating any clip
        check_output_dir(dst, args.force)
    for dst, seed in jobs:
        t0 = time.perf_counter()
        out = generate(dst, seed, cameras=args.cameras, frames=args.frames, size=args.size,
                       targets=args.targets, lidar=not args.no_lidar, shadows=not args.no_shadows,
                       frame_interval=args.frame_interval, jpeg_quality=args.jpeg_quality,
                       depth_format=args.depth_format, overwrite=args.force, realism=realism,
                       image_format=args.image_format, target_offsets=args.target_offsets,
                       without_actors=args.without_actors)
        n = len(json.loads((out / "clip.json").read_text())["cameras"])
        print(f"wrote {out}: {n} cameras x {args.frames} frames at {args.size[0]}x{args.size[1]} "
              f"in {time.perf_counter() - t0:.1f} s", flush=True)
    return 0


def _offsets(text: str) -> list[float]:
    """``--target-offsets``: comma-separated finite metres (range checks: the generator's)."""
    out = []
    for item in text.split(","):
        try:
            value = float(item)
        except ValueError:
            value = float("nan")
        if value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"expected metres such as -1,0,1.5, got {text!r}")
        out.append(value)
    return out
