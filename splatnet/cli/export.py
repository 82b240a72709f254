"""``splatnet export SCENE -o OUT``: a scene at one time as a PLY or .splat, or an actor's track."""

from __future__ import annotations

import argparse
from pathlib import Path

from splatnet.cli._args import check_output_file, finite_float

FORMATS = (".ply", ".splat")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="write a scene at one time as a PLY or .splat, or an actor's track",
        description="Snapshot a .scene at one time (background plus every actor present then, "
                    "each placed by its track) as a 3DGS PLY or .splat file for viewers; or, with "
                    "--track, write one actor's track as TRACK.json (the format `splatnet edit "
                    "--move ID:TRACK.json` reads; docs/scenes.md).")
    p.add_argument("scene", metavar="SCENE", help="a .scene file")
    p.add_argument("-o", "--out", required=True,
                   help="output file: .ply or .splat (a snapshot), or .json with --track")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--time", type=finite_float, default=None, metavar="SECONDS",
                      help="the time to snapshot, seconds on the scene clock, within its time "
                           "span (default: the first frame's time)")
    when.add_argument("--frame", type=int, default=None, metavar="I",
                      help="snapshot at frame I's time instead")
    when.add_argument("--track", default=None, metavar="ID",
                      help="write actor ID's track as TRACK.json instead of a snapshot")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from splatnet.errors import ValidationError
    from splatnet.scene import Scene

    out = Path(args.out)
    want = (".json",) if args.track is not None else FORMATS
    if out.suffix.lower() not in want:
        raise ValidationError(f"-o {out}: the output must end in {' or '.join(want)}"
                              + ("" if args.track is not None else
                                 " (or .json with --track ID, for an actor's track)"))
    check_output_file(out, args.force)
    scene = Scene.load(args.scene)
    if args.track is not None:
        actor = scene.actors.get(args.track)
        if actor is None:
            raise ValidationError(f"--track {args.track}: no such actor in {args.scene} (actors: "
                                  f"{', '.join(scene.actors) or 'none'})")
        actor.track.save(out, force=args.force)
        t0, t1 = actor.span
        print(f"wrote the track of {actor.id} ({actor.label}, {len(actor.track)} entries, "
              f"{t0:.3f}..{t1:.3f} s) to {out}")
        return 0
    t = _time(scene, args)
    g = scene.to_gaussians(t)
    dropped = g.save_splat(out) if out.suffix.lower() == ".splat" else g.save_ply(out)
    present = [a.id for a in scene.actors.values() if a.pose_at(t) is not None]
    print(f"wrote {g.num_gaussians - dropped} Gaussians at t = {t:.3f} s to {out}: background "
          f"{scene.background.num_gaussians}, {len(present)} of {len(scene.actors)} actor(s) "
          f"present{': ' + ', '.join(present) if present else ''}"
          + (f" ({dropped} non-finite dropped)" if dropped else ""))
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
