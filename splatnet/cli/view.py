"""``splatnet view SCENE_OR_SPLATS [--clip CLIP]``: a local web viewer of a scene or splat file,
with a drive mode through :class:`splatnet.sim.DrivingEnv` (docs/viewer.md)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from splatnet.cli._args import size_hw


def port_number(text: str) -> int:
    """``--port``: a TCP port from 1 to 65535."""
    try:
        v = int(text)
    except ValueError:
        v = 0
    if not 1 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 1 to 65535, got {text!r}")
    return v


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "view", help="look at a scene or splat file in the browser, and drive through a scene",
        description="Serve a local web viewer (viser; its page is bundled, nothing downloads): the "
                    "splats drawn by the browser (SH degree 0), the rig's cameras, the ego path, the "
                    "actor boxes moving along their tracks with a time slider, the clip's LiDAR with "
                    "--clip; and, for a .scene, a drive mode: W/S throttle and brake, A/D steer, "
                    "stepping splatnet.sim.DrivingEnv, with the front camera rendered by splatnet. "
                    "Runs until Ctrl-C.")
    p.add_argument("source", metavar="SCENE_OR_SPLATS",
                   help="a .scene file (drive mode), or a splat file (.ply, .splat, .spz, .glb, ...)")
    p.add_argument("--clip", default=None,
                   help="the source clip: its LiDAR points at the slider's frame (and, for a splat "
                        "file, its cameras and ego path)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to serve on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=port_number, default=8080, help="port (default 8080)")
    p.add_argument("--size", type=size_hw, default=(128, 224), metavar="HxW",
                   help="drive mode's front-camera picture size (default 128x224)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for path, what in ((args.source, "SCENE_OR_SPLATS"), (args.clip, "--clip")):
        if path is not None and not Path(path).exists():
            raise FileNotFoundError(f"{what} {path}: no such file or directory")
    from splatnet.viewer import Viewer

    viewer = Viewer(args.source, clip=args.clip, host=args.host, port=args.port, size=args.size)
    print(f"splatnet view: serving http://{args.host}:{viewer.port} (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("splatnet view: stopped", file=sys.stderr)
        return 0
    finally:
        viewer.close()
