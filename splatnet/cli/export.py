"""``splatnet export INPUT -o OUT``: a splat file or a scene (at one time, as a sequence of times,
or an actor's track) in any splat format (docs/formats.md)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from splatnet.cli._args import check_output_file, finite_float

FORMAT_NAMES = ("ply", "splat", "spz", "glb", "compressed-ply")
#: ``--times``: at most this many snapshots (a minute at 60 Hz is 3,600).
MAX_SEQUENCE = 10000


def time_range(text: str) -> tuple[float, float, float]:
    """``A:B:STEP`` seconds (finite, ``A <= B``, ``STEP > 0``) → ``(A, B, STEP)``."""
    try:
        a, b, step = (float(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected A:B:STEP in seconds (e.g. 0:2:0.1), got "
                                         f"{text!r}") from None
    if not all(math.isfinite(v) for v in (a, b, step)) or step <= 0 or b < a:
        raise argparse.ArgumentTypeError(f"expected finite A <= B and STEP > 0, got {text!r}")
    return a, b, step


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="convert splats between formats, or a scene to splats at given times",
        description="Write a splat file (PLY, compressed PLY, SPZ or glb) in another format, or a "
                    ".scene as Gaussians for viewers: at one time (background plus every actor "
                    "present then), as a sequence of times with a JSON index (--times), or one "
                    "actor's track as TRACK.json (--track). The output format comes from the "
                    "extension (.ply, .compressed.ply, .spz, .glb, .splat) or --format. "
                    "docs/formats.md describes each format and its precision.")
    p.add_argument("input", metavar="INPUT",
                   help="a .scene file, or a splat file: PLY, compressed PLY, SPZ or glb")
    p.add_argument("-o", "--out", required=True,
                   help="output file (.ply, .compressed.ply, .spz, .glb, .splat), a folder with "
                        "--times, or .json with --track")
    p.add_argument("--format", choices=FORMAT_NAMES, default=None,
                   help="output format (default: from the output's extension; with --times: ply)")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--time", type=finite_float, default=None, metavar="SECONDS",
                      help="scene only: the time to snapshot, seconds on the scene clock, within "
                           "its time span (default: the first frame's time)")
    when.add_argument("--frame", type=int, default=None, metavar="I",
                      help="scene only: snapshot at frame I's time instead")
    when.add_argument("--times", type=time_range, default=None, metavar="A:B:STEP",
                      help="scene only: one snapshot every STEP seconds from A to B (inclusive), "
                           "written into the folder -o with index.json")
    when.add_argument("--track", default=None, metavar="ID",
                      help="scene only: write actor ID's track as TRACK.json instead of a snapshot")
    p.add_argument("--bake-sky", action="store_true",
                   help="scene only: add the sky model as a far shell of Gaussians, so viewers "
                        "show the sky splatnet renders")
    p.add_argument("--spz-version", type=int, choices=(3, 4), default=None,
                   help="SPZ version to write (default 4, zstd; 3 is gzip, for older readers)")
    p.add_argument("--keep-colors", action="store_true",
                   help="store SH colours and opacities exactly instead of fitting DC colours "
                        "into [0, 1] for 8-bit viewers (not for .splat)")
    p.add_argument("--force", action="store_true", help="overwrite existing output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from splatnet.errors import ValidationError

    inp, out = Path(args.input), Path(args.out)
    is_scene = inp.suffix.lower() == ".scene"
    scene_only = [name for name, on in (("--time", args.time is not None),
                                        ("--frame", args.frame is not None),
                                        ("--times", args.times is not None),
                                        ("--track", args.track is not None),
                                        ("--bake-sky", args.bake_sky)) if on]
    if not is_scene and scene_only:
        raise ValidationError(f"{scene_only[0]}: only for a .scene input; {inp} is a splat file")
    if args.track is not None:
        if out.suffix.lower() != ".json":
            raise ValidationError(f"-o {out}: the output must end in .json (an actor's track)")
        if args.format or args.bake_sky or args.spz_version or args.keep_colors:
            raise ValidationError("--track writes TRACK.json; --format, --bake-sky, "
                                  "--spz-version and --keep-colors do not apply")
        check_output_file(out, args.force)
        return _track(args, inp, out)
    if args.times is not None:
        return _sequence(args, inp, out)
    fmt = _output_format(out, args.format)
    _check_options(args, fmt)
    check_output_file(out, args.force)
    if not is_scene:
        return _convert(args, inp, out, fmt)
    scene = _load_scene(inp)
    t = _time(scene, args)
    g, shell = _snapshot(scene, t, args.bake_sky)
    dropped = _write(g, out, fmt, args)
    present = [a.id for a in scene.actors.values() if a.pose_at(t) is not None]
    print(f"wrote {g.num_gaussians - dropped} Gaussians at t = {t:.3f} s to {out}: background "
          f"{scene.background.num_gaussians}, {len(present)} of {len(scene.actors)} actor(s) "
          f"present{': ' + ', '.join(present) if present else ''}"
          + (f", sky shell {shell}" if shell else "")
          + (f" ({dropped} non-finite dropped)" if dropped else ""))
    return 0


def _output_format(out: Path, fmt: str | None) -> str:
    from splatnet.errors import ValidationError
    from splatnet.io.formats import output_format

    try:
        return output_format(out, fmt)
    except ValidationError as exc:
        if fmt is None:
            raise ValidationError(f"-o {out}: the output must end in .ply, .compressed.ply, .spz, "
                                  ".glb or .splat (or .json with --track ID, for an actor's "
                                  "track; a folder with --times)") from None
        raise ValidationError(f"-o {out}: {str(exc).split(': ', 1)[-1]} (--format {fmt})") from None


def _check_options(args: argparse.Namespace, fmt: str) -> None:
    from splatnet.errors import ValidationError

    if args.spz_version is not None and fmt != "spz":
        raise ValidationError(f"--spz-version: only for SPZ output, not {fmt}")
    if args.keep_colors and fmt == "splat":
        raise ValidationError("--keep-colors: .splat stores 8-bit colours; use another format")


def _write(g, out: Path, fmt: str, args: argparse.Namespace) -> int:
    return g.save(out, format=fmt, clamp_colors=not args.keep_colors, spz_version=args.spz_version)


def _convert(args: argparse.Namespace, inp: Path, out: Path, fmt: str) -> int:
    from splatnet import Gaussians
    from splatnet.io.formats import input_format

    source = input_format(inp)
    g = Gaussians.load(inp)
    dropped = _write(g, out, fmt, args)
    size, before = out.stat().st_size, inp.stat().st_size
    print(f"wrote {g.num_gaussians - dropped} Gaussians (SH degree {g.sh_degree}) from {inp} "
          f"({source}, {before:,} bytes) to {out} ({fmt}, {size:,} bytes)"
          + (f" ({dropped} non-finite dropped)" if dropped else ""))
    return 0


def _load_scene(inp: Path):
    from splatnet.scene import Scene

    return Scene.load(inp)


def _snapshot(scene, t: float, bake_sky: bool, shell=None):
    """The scene's Gaussians at ``t`` and, with ``bake_sky``, the sky shell appended."""
    from splatnet import Gaussians
    from splatnet.errors import ValidationError
    from splatnet.scene.sky_bake import sky_shell

    g = scene.to_gaussians(t)
    if not bake_sky:
        return g, 0
    if scene.sky is None:
        raise ValidationError("--bake-sky: the scene has no sky model to bake")
    if shell is None:
        shell = sky_shell(scene, sh_degree=g.sh_degree)
    return Gaussians.cat([g, shell]), shell.num_gaussians


def _sequence(args: argparse.Namespace, inp: Path, out: Path) -> int:
    from splatnet.errors import ValidationError
    from splatnet.io.atomic import atomic_write
    from splatnet.io.formats import FORMATS
    from splatnet.scene.sky_bake import sky_shell

    fmt = args.format or "ply"
    _check_options(args, fmt)
    a, b, step = args.times
    count = math.floor((b - a) / step + 1e-9) + 1
    if count > MAX_SEQUENCE:
        raise ValidationError(f"--times {a:g}:{b:g}:{step:g}: {count} snapshots, at most "
                              f"{MAX_SEQUENCE}")
    if out.suffix.lower() in (".ply", ".spz", ".glb", ".splat", ".json"):
        raise ValidationError(f"-o {out}: with --times the output is a folder (it gets one file "
                              "per time and index.json)")
    if out.exists() and not out.is_dir():
        raise ValidationError(f"-o {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise FileExistsError(f"{out}: folder is not empty (pass --force to write into it)")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"{out}: directory {out.parent} does not exist")
    scene = _load_scene(inp)
    t0, t1 = scene.time_span
    # Rounded to the nanosecond, so 3 × 0.1 is the frame time 0.3 and not 0.30000000000000004.
    times = [round(a + i * step, 9) for i in range(count)]
    if a < t0 - 1e-9 or times[-1] > t1 + 1e-9:
        raise ValidationError(f"--times {a:g}:{b:g}:{step:g}: outside the scene's time span "
                              f"{t0:.3f}..{t1:.3f} s")
    shell = None
    if args.bake_sky:
        if scene.sky is None:
            raise ValidationError("--bake-sky: the scene has no sky model to bake")
        shell = sky_shell(scene, sh_degree=scene.to_gaussians(times[0]).sh_degree)
    out.mkdir(exist_ok=True)
    ext = FORMATS[fmt].extensions[0]
    frames = []
    for i, t in enumerate(times):
        g, _ = _snapshot(scene, t, args.bake_sky, shell)
        name = f"frame_{i:05d}{ext}"
        dropped = _write(g, out / name, fmt, args)
        frames.append({"t": t, "file": name, "gaussians": g.num_gaussians - dropped})
    index = {"format": "splatnet-splat-sequence", "version": 1, "source": inp.name,
             "file_format": fmt, "sky_baked": bool(args.bake_sky), "frames": frames}
    with atomic_write(out / "index.json", "w") as f:
        f.write(json.dumps(index, indent=1) + "\n")
    print(f"wrote {len(frames)} {fmt} snapshot(s), t = {times[0]:.3f}..{times[-1]:.3f} s every "
          f"{step:g} s, to {out}/ with index.json" + (" (sky baked)" if args.bake_sky else ""))
    return 0


def _track(args: argparse.Namespace, inp: Path, out: Path) -> int:
    from splatnet.errors import ValidationError

    scene = _load_scene(inp)
    actor = scene.actors.get(args.track)
    if actor is None:
        raise ValidationError(f"--track {args.track}: no such actor in {inp} (actors: "
                              f"{', '.join(scene.actors) or 'none'})")
    actor.track.save(out, force=args.force)
    t0, t1 = actor.span
    print(f"wrote the track of {actor.id} ({actor.label}, {len(actor.track)} entries, "
          f"{t0:.3f}..{t1:.3f} s) to {out}")
    return 0


def _time(scene, args: argparse.Namespace) -> float:
    from splatnet.errors import ValidationError

    t0, t1 = scene.time_span
    if args.frame is not None:
        if not 0 <= args.frame < scene.num_frames:
            raise ValidationError(f"--frame {args.frame}: the scene has frames 0..{scene.num_frames - 1}")
        return float(scene.frame_times[args.frame])
    if args.time is None:
        return t0
    if not t0 <= args.time <= t1:
        raise ValidationError(f"--time {args.time:g}: outside the scene's time span "
                              f"{t0:.3f}..{t1:.3f} s")
    return float(args.time)
