"""Drive a reconstructed scene in closed loop along its own logged path, with a policy callable.

The policy (``PathFollower``) sees only the observation and the info of the last step: it steers
by pure pursuit towards the point of a target path a short time ahead, and accelerates or brakes
towards the target path's speed. Here the target is the log itself, so the ego should stay on
the logged path (distance ≈ 0) and earn about one reward point per metre driven. For comparison,
the script also replays the log exactly (``action_mode="pose"``) and prints that return.

    python examples/drive_log_path.py                          # the bundled 3-frame sample clip
    python examples/drive_log_path.py --clip path/to/clip      # any clip (reconstructed first)
    python examples/drive_log_path.py --scene street.scene     # a scene from `splatnet reconstruct`
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

import splatnet
from splatnet.scene import Scene
from splatnet.scene.trajectory import EgoTrajectory
from splatnet.sim import DrivingEnv, Vehicle

SAMPLE_CLIP = Path(__file__).resolve().parent / "data" / "sample_clip"


class PathFollower:
    """A policy callable ``(obs, info) -> (acceleration m/s², steering rad)``.

    Pure pursuit (Coulter, CMU-RI-TR-92-01): the target path's point ``lookahead`` seconds ahead
    (at least ``min_lookahead`` metres), seen from the rear axle, lies on a circle through the
    rear axle of curvature ``κ = 2 y / (x² + y²)``; the bicycle model drives that circle with
    steering ``atan(L κ)``. The speed follows the target path's with gain ``speed_gain`` (1/s).
    """

    def __init__(self, target: EgoTrajectory, vehicle: Vehicle, *, lookahead: float = 0.8,
                 min_lookahead: float = 4.0, speed_gain: float = 2.0) -> None:
        self.target, self.vehicle = target, vehicle
        self.lookahead, self.min_lookahead, self.speed_gain = lookahead, min_lookahead, speed_gain
        times, poses = target.times, target.ego_to_world
        self._speed = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1) / np.diff(times)

    def __call__(self, obs: dict, info: dict) -> np.ndarray:
        pose, speed, t = obs["ego_to_world"], float(obs["ego"][0]), float(info["t"])
        t0, t1 = self.target.span
        # The target point: `lookahead` s ahead on the target path, pushed further ahead until it
        # is `min_lookahead` m away (or the path ends).
        rear = pose.copy()
        rear[:3, 3] += pose[:3, 0] * self.vehicle.rear_axle_x
        ahead = min(t + self.lookahead, t1)
        point = self.target.pose_at(ahead)[:3, 3]
        while np.linalg.norm(point - rear[:3, 3]) < self.min_lookahead and ahead < t1:
            ahead = min(ahead + 0.1, t1)
            point = self.target.pose_at(ahead)[:3, 3]
        x, y = (point - rear[:3, 3]) @ rear[:3, :2]
        d2 = x * x + y * y
        steer = math.atan(self.vehicle.wheelbase * 2.0 * y / d2) if d2 > 0.25 else 0.0
        j = min(max(int(np.searchsorted(self.target.times, min(max(t, t0), t1), side="right")) - 1, 0),
                len(self._speed) - 1)
        accel = self.speed_gain * (self._speed[j] - speed)
        return self.vehicle.clip([accel, steer])


def load_scene(args: argparse.Namespace) -> Scene:
    if args.scene:
        return Scene.load(args.scene)
    clip = args.clip or SAMPLE_CLIP
    print(f"reconstructing {clip} at {args.size[0]}x{args.size[1]} ...")
    return splatnet.reconstruct_scene(clip, size=args.size, frames=args.frames)


def run(env: DrivingEnv, policy) -> tuple[float, dict]:
    """One episode; prints each step; returns the return and the last info."""
    obs, info = env.reset(seed=0)
    total = 0.0
    while True:
        action = policy(obs, info)
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        x, y = obs["ego_to_world"][:2, 3]
        print(f"  t={info['t']:6.2f} s  ego=({x:7.2f}, {y:6.2f}) m  v={obs['ego'][0]:5.2f} m/s  "
              f"steer={obs['ego'][2]:+.3f} rad  off path {info['distance_to_path']:5.2f} m  "
              f"reward {reward:+.3f}")
        if terminated or truncated:
            why = f"collision with {', '.join(info['collided_with'])}" if terminated else "end of log"
            return total, {**info, "ended": why}


def log_replay_return(scene: Scene, args: argparse.Namespace) -> float:
    """The return of replaying the log exactly (pose mode), the reference for the policies."""
    env = DrivingEnv(scene, action_mode="pose", cameras=args.cameras, size=args.size)
    env.reset(seed=0)
    total, k = 0.0, 0
    while True:
        k += 1
        _, reward, terminated, truncated, _ = env.step(env.log.pose_at(env.time + env.dt))
        total += reward
        if terminated or truncated:
            return total


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--clip", help="a clip directory (default: the bundled sample clip)")
    src.add_argument("--scene", help="a .scene file (splatnet reconstruct CLIP -o NAME.scene)")
    p.add_argument("--size", default="128x224", help="HxW of reconstruction and cameras")
    p.add_argument("--frames", default=None,
                   help="context frames for the reconstruction, e.g. 0,13,26,39 (default: all)")
    p.add_argument("--cameras", default="cam_front", help="observed cameras, comma-separated")
    return p


def parse_args(p: argparse.ArgumentParser) -> argparse.Namespace:
    args = p.parse_args()
    h, w = (int(v) for v in args.size.lower().split("x"))
    args.size = (h, w)
    args.frames = None if args.frames is None else [int(f) for f in args.frames.split(",")]
    args.cameras = args.cameras.split(",")
    return args


def main() -> None:
    args = parse_args(parser(__doc__.splitlines()[0]))
    scene = load_scene(args)
    env = DrivingEnv(scene, cameras=args.cameras, size=args.size)
    print(f"scene: {scene}; {env.dt:.3f} s steps, the log is {env.path.length:.1f} m long")
    policy = PathFollower(env.log, env.vehicle)
    total, info = run(env, policy)
    print(f"path follower: return {total:.3f} over {info['step']} steps ({info['ended']}), "
          f"{info['progress']:.2f} m along the log, {info['distance_to_path']:.3f} m off it at the end")
    print(f"log replay (pose mode): return {log_replay_return(scene, args):.3f}")


if __name__ == "__main__":
    main()
