"""``splatnet convert KIND SRC DST``: turn a DGP/DDAD, nuScenes, nerfstudio, COLMAP or PandaSet dataset
into a splatnet clip (``docs/clip-format.md``)."""

from __future__ import annotations

import argparse

from splatnet.cli._args import check_output_dir, frame_range, size_hw

KINDS = ("dgp", "nuscenes", "nerfstudio", "colmap", "pandaset")
#: options only some converters take (others would silently ignore them): flag -> (dest, kinds)
_ONLY_FOR = {
    "--frames": ("frames", ("pandaset",)),
    "--size": ("size", ("pandaset",)),
    "--no-actors": ("actors", ("dgp", "nuscenes", "pandaset")),
    "--masks": ("masks", ("dgp", "nuscenes", "pandaset")),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert",
        help="convert a dataset (dgp, nuscenes, nerfstudio, colmap, pandaset) into a splatnet clip",
        description=(
            "Convert a dataset into a splatnet clip directory. Kinds: dgp (a DGP/DDAD scene "
            "directory), nuscenes (the dataset root with v1.0-*/ tables and samples/), nerfstudio "
            "(a directory with transforms.json, or the file), colmap (a project with sparse/0 and "
            "images/, or a sparse model directory with --images), pandaset (one PandaSet sequence "
            "directory with camera/ and lidar/). PandaSet LiDAR sweeps are Python pickles, which can "
            "run code when loaded: convert only trusted dataset files (your own PandaSet download)."
        ),
    )
    # A free string (not argparse choices) so an unknown kind gets splatnet's one-line error.
    p.add_argument("kind", metavar="KIND", help=f"source format: one of {', '.join(KINDS)}")
    p.add_argument("src", metavar="SRC", help="source dataset (directory or file)")
    p.add_argument("dst", metavar="DST", help="output clip directory (must not exist unless --force)")
    p.add_argument("--force", action="store_true", help="replace DST if it is an existing clip")
    p.add_argument("--overwrite", dest="force", action="store_true", help=argparse.SUPPRESS)  # old
    p.add_argument("--scene", default=None, help="nuscenes: scene name when the tables hold several")
    p.add_argument(
        "--version",
        dest="table_version",
        default=None,
        help="nuscenes: table directory (e.g. v1.0-mini) when there are several",
    )
    p.add_argument("--images", default=None, help="colmap: image directory (default: found beside the model)")
    p.add_argument("--frames", type=frame_range, default=None, metavar="A:B",
                   help="pandaset: frame range, Python slice style (default: all)")
    p.add_argument("--size", type=size_hw, default=None, metavar="HxW",
                   help="pandaset: resize the images to HxW (default: copy them unchanged)")
    p.add_argument("--no-actors", dest="actors", action="store_const", const=False, default=None,
                   help="dgp, nuscenes, pandaset: leave the annotated 3D boxes out (default: they "
                        "become the clip's actor tracks)")
    p.add_argument("--masks", default=None, metavar="DIR",
                   help="dgp, nuscenes, pandaset: per-camera validity masks DIR/<camera>.png "
                        "(nonzero = the scene, 0 = the ego's own hood or body: no Gaussians are "
                        "placed and no pixels scored there; e.g. DDAD's self-occlusion masks)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from splatnet.clip import Clip
    from splatnet.clip.convert import convert
    from splatnet.errors import ValidationError

    for flag, (dest, kinds) in _ONLY_FOR.items():
        if getattr(args, dest) is not None and args.kind in KINDS and args.kind not in kinds:
            raise ValidationError(
                f"{flag}: the {args.kind} converter does not take it (only {', '.join(kinds)})"
            )
    check_output_dir(args.dst, args.force)  # before reading the source
    options = {"overwrite": args.force}
    if args.scene is not None:
        options["scene"] = args.scene
    if args.table_version is not None:
        options["version"] = args.table_version
    if args.images is not None:
        options["images"] = args.images
    if args.frames is not None:
        options["frames"] = args.frames
    if args.size is not None:
        options["size"] = args.size
    if args.actors is not None:
        options["actors"] = args.actors
    if args.masks is not None:
        options["masks"] = args.masks
    path = convert(args.kind, args.src, args.dst, **options)
    clip = Clip.load(path)
    print(
        f"wrote {path}: {clip.num_cameras} cameras x {clip.num_frames} frames"
        + (", with LiDAR" if clip.has_lidar else "")
        + (f", {len(clip.actors)} actors" if clip.actors else "")
        + (f", masks for {sum(c.mask is not None for c in clip.cameras)} camera(s)"
           if any(c.mask is not None for c in clip.cameras) else "")
    )
    return 0
