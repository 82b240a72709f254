"""``splatnet edit SCENE -o OUT``: remove, move or insert actors of a scene (docs/scenes.md)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from splatnet.cli._args import check_output_file, name_list


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "edit", help="remove, move or insert actors of a scene",
        description="Edit a .scene's actors and write a new .scene. Edits apply in this order: "
                    "--remove, --move (each in turn), --insert. Only the actors named change; "
                    "the background and every other actor are kept exactly.")
    p.add_argument("scene", metavar="SCENE", help="the .scene file to edit")
    p.add_argument("-o", "--out", required=True,
                   help="the edited .scene to write (not SCENE itself unless --force)")
    p.add_argument("--remove", type=name_list, default=None, metavar="ID,...",
                   help="remove these actors")
    p.add_argument("--move", type=move_spec, action="append", default=[],
                   metavar="ID:DX,DY,DYAW | ID:TRACK.json",
                   help="shift actor ID's whole track by DX, DY metres along the world x and y "
                        "axes and turn it by DYAW degrees about its box's up axis; or give it the "
                        "track in TRACK.json (a name ending in .json; docs/scenes.md); repeatable")
    p.add_argument("--insert", type=insert_spec, default=None, metavar="OTHER_SCENE:ID",
                   help="insert actor ID of another .scene on the track given by --track")
    p.add_argument("--track", default=None, metavar="TRACK.json",
                   help="the inserted actor's track (times on this scene's clock, poses in its "
                        "world)")
    p.add_argument("--new-id", default=None, metavar="ID",
                   help="the inserted actor's id in this scene (default: its own)")
    p.add_argument("--force", action="store_true",
                   help="overwrite an existing OUT (also needed to write over SCENE itself)")
    p.set_defaults(func=run)


def move_spec(text: str) -> tuple:
    """``ID:DX,DY,DYAW`` → ``("offset", ID, dx, dy, dyaw_degrees)``; ``ID:PATH.json`` →
    ``("track", ID, PATH)``."""
    aid, sep, rest = text.partition(":")
    if not sep or not aid.strip() or not rest.strip():
        raise argparse.ArgumentTypeError(f"expected ID:DX,DY,DYAW or ID:TRACK.json, got {text!r}")
    if rest.lower().endswith(".json"):
        return ("track", aid.strip(), rest)
    try:
        values = [float(v) for v in rest.split(",")]
    except ValueError:
        values = []
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected ID:DX,DY,DYAW (three finite numbers: metres, "
                                         f"metres, degrees) or ID:TRACK.json, got {text!r}")
    return ("offset", aid.strip(), *values)


def insert_spec(text: str) -> tuple[str, str]:
    """``OTHER_SCENE:ID`` → ``(path, ID)`` (split at the last ``:``: ids have none)."""
    path, sep, aid = text.rpartition(":")
    if not sep or not path or not aid.strip():
        raise argparse.ArgumentTypeError(f"expected OTHER_SCENE:ID, got {text!r}")
    return path, aid.strip()


def run(args: argparse.Namespace) -> int:
    from splatnet.errors import ValidationError
    from splatnet.scene import Scene, Track

    src, out = Path(args.scene), Path(args.out)
    if not (args.remove or args.move or args.insert):
        raise ValidationError("nothing to do: give --remove, --move or --insert")
    if args.insert is None and (args.track is not None or args.new_id is not None):
        raise ValidationError("--track and --new-id go with --insert (to move an actor onto a "
                              "track: --move ID:TRACK.json)")
    if args.insert is not None and args.track is None:
        raise ValidationError(f"--insert {args.insert[0]}:{args.insert[1]}: give its track with "
                              "--track TRACK.json")
    if out.suffix.lower() != ".scene":
        raise ValidationError(f"-o {out}: the output must be a .scene file")
    if _same_file(src, out) and not args.force:
        raise ValidationError(f"-o {out}: is the input scene itself; write another file, or pass "
                              "--force to replace it")
    check_output_file(out, args.force)
    scene = Scene.load(src)
    done = []
    if args.remove:
        scene = scene.remove(args.remove)
        done.append(f"removed {', '.join(args.remove)}")
    for spec in args.move:
        if spec[0] == "track":
            track = Track.load(spec[2], scene.frame_times)
            scene = scene.set_track(spec[1], track)
            done.append(f"{spec[1]} on the track in {spec[2]}")
        else:
            _, aid, dx, dy, dyaw = spec
            scene = scene.move(aid, dx, dy, math.radians(dyaw))
            done.append(f"moved {aid} by ({dx:g} m, {dy:g} m, {dyaw:g} deg)")
    if args.insert is not None:
        other_path, aid = args.insert
        other = Scene.load(other_path)
        actor = other.actors.get(aid)
        if actor is None:
            raise ValidationError(f"--insert {other_path}:{aid}: no such actor in {other_path} "
                                  f"(actors: {', '.join(other.actors) or 'none'})")
        scene = scene.insert(actor, Track.load(args.track, scene.frame_times), args.new_id)
        done.append(f"inserted {aid} from {other_path}"
                    + (f" as {args.new_id}" if args.new_id else ""))
    scene.save(out, force=args.force)
    print(f"wrote {out}: {'; '.join(done)} ({len(scene.actors)} actor(s), "
          f"{scene.num_gaussians} Gaussians)")
    return 0


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and a.exists() and a.samefile(b))
    except OSError:
        return False
