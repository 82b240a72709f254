"""Hand-built scenes for the driving environment's tests: a straight log along +x at a constant
speed, with parked actors where a test wants them (no network)."""

from __future__ import annotations

import numpy as np
from scene.builders import gaussians, make_rig

from splatnet.clip.actors import yaw_pose
from splatnet.scene import Scene, SceneActor, Track

SPEED = 10.0     # m/s of the log
PERIOD = 0.1     # s between frames
FRAMES = 31      # 3 s


def parked(id: str, x: float, y: float, yaw: float = 0.0, size=(4.0, 1.8, 1.5)) -> SceneActor:
    """A car standing still for the whole log, its box on the ground (z from 0 to its height)."""
    times = np.arange(FRAMES) * PERIOD
    pose = yaw_pose(x, y, size[2] / 2, yaw)
    return SceneActor(id, "car", size, Track(times, np.repeat(pose[None], FRAMES, 0)),
                      gaussians(30, 5, sh_degree=1, extent=size))


def straight_scene(actors=()) -> Scene:
    """The ego at x = SPEED · t on the x axis (ego frame = world axes), FRAMES frames."""
    times = np.arange(FRAMES) * PERIOD
    return Scene(background=gaussians(150, 1, sh_degree=1, centre=(20.0, 0.0, 0.5),
                                      extent=(40.0, 14.0, 3.0)),
                 actors=list(actors), rig=make_rig(), frame_times=times,
                 ego_to_world=np.stack([yaw_pose(SPEED * t, 0.0, 0.0, 0.0) for t in times]))
