"""Change lanes in a reconstructed scene, in closed loop, with a policy callable.

The target path is the log moved sideways by ``--offset`` metres (positive = left) with a smooth
ramp between 20 % and 80 % of the episode (``EgoTrajectory.lane_change``); the policy is the pure
pursuit path follower of ``drive_log_path.py`` on that target. The cameras see the street from
the new lane; the default reward pays for progress along the log and charges for the distance
from it beyond 1 m, and the episode ends early if the ego's box meets an actor's (a parked or
oncoming car in the other lane). Prints each step and the return, next to the return of
following the log itself.

    python examples/lane_change_policy.py                        # the bundled sample clip
    python examples/lane_change_policy.py --scene street.scene --offset -3.2
"""

from __future__ import annotations

import numpy as np
from drive_log_path import PathFollower, load_scene, parse_args, parser, run

from splatnet.sim import DrivingEnv


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--offset", type=float, default=3.5,
                   help="metres to move sideways, positive = left (default 3.5)")
    args = parse_args(p)
    offset = args.offset
    scene = load_scene(args)
    env = DrivingEnv(scene, cameras=args.cameras, size=args.size)
    t0, t1 = scene.time_span
    dense = env.log.resampled(np.linspace(t0, t1, max(2, int(round((t1 - t0) / 0.02)) + 1)))
    target = dense.lane_change(offset, t0 + 0.2 * (t1 - t0), t0 + 0.8 * (t1 - t0))
    print(f"scene: {scene}; lane change of {offset:+.2f} m between t = {t0 + 0.2 * (t1 - t0):.2f} "
          f"and {t0 + 0.8 * (t1 - t0):.2f} s")
    print("lane change:")
    total, info = run(env, PathFollower(target, env.vehicle))
    print(f"lane change: return {total:.3f} over {info['step']} steps ({info['ended']}), "
          f"{info['distance_to_path']:.2f} m from the logged path at the end")
    print("staying in lane:")
    total, info = run(env, PathFollower(env.log, env.vehicle))
    print(f"staying in lane: return {total:.3f} over {info['step']} steps ({info['ended']})")


if __name__ == "__main__":
    main()
