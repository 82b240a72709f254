"""DrivingEnv.step latency: wall time per step for 1 and 6 cameras at 128x224 and 256x448, split
into dynamics (vehicle model, collision checks, path, reward), scene composition (the world's
Gaussians at the step's time: actors carried along their tracks), rasterisation and the sky.

    python benchmarks/sim.py [--scene NAME.scene | --clip CLIP] [--reconstruct-size 128x224]
        [--steps 20] [--device cpu] [--out benchmarks/results/sim.json]

The scene defaults to the bundled sample clip reconstructed at 128x224 by the shipped model
(about 128k Gaussians, 37 actors). ``DrivingEnv.step`` is timed whole, with its own split into
"dynamics" and "observation"; composition (``Scene.gaussians_at``), rasterisation
(``splatnet.render`` of those Gaussians) and the sky (``SkyBackground.render`` at the pixels
where it shows, as ``DrivingEnv`` asks for it) are then timed on their own at the same poses and
times, so their sum can be compared with the observation time.
Medians over ``--steps`` steps after two warm-up steps. Prints a Markdown table; writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SKY_MIN_TRANSMITTANCE = 1 / 512  # what DrivingEnv passes to Scene.render


def _median_time(fn, repeat: int) -> tuple[float, float]:
    """Median wall and CPU (this process, all threads) seconds of ``fn()``."""
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    import torch

    import splatnet
    from splatnet.cameras import Cameras
    from splatnet.cli._args import size_hw
    from splatnet.scene import Scene
    from splatnet.sim import DrivingEnv

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--scene", help="a .scene file")
    src.add_argument("--clip", default=str(REPO / "examples" / "data" / "sample_clip"))
    ap.add_argument("--reconstruct-size", type=size_hw, default=(128, 224))
    ap.add_argument("--sizes", default="128x224,256x448")
    ap.add_argument("--cameras", default="1,6", help="camera counts (the rig's first N)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "sim.json"))
    args = ap.parse_args()

    if args.scene:
        scene, source = Scene.load(args.scene, device=args.device), args.scene
    else:
        scene = splatnet.reconstruct_scene(args.clip, size=args.reconstruct_size, device=args.device)
        h, w = args.reconstruct_size
        source = f"{Path(args.clip).name} reconstructed at {h}x{w}"
    t0, t1 = scene.time_span
    dt = (t1 - t0) / (args.steps + 2)  # one episode holds the warm-up and the timed steps
    sync = torch.cuda.synchronize if scene.device.type == "cuda" else (lambda: None)
    rows = []
    for count in (int(c) for c in args.cameras.split(",")):
        names = scene.rig.names[:count]
        for size in (size_hw(s) for s in args.sizes.split(",")):
            env = DrivingEnv(scene, cameras=names, size=size, dt=dt)
            obs, info = env.reset(seed=0)
            total, cpu, dyn, obs_t, poses = [], [], [], [], []  # noqa: B007
            for k in range(args.steps + 2):
                sync()
                start, start_cpu = time.perf_counter(), time.process_time()
                obs, *_ = env.step([0.0, 0.0])
                sync()
                if k >= 2:
                    total.append(time.perf_counter() - start)
                    cpu.append(time.process_time() - start_cpu)
                    dyn.append(env.step_seconds["dynamics"])
                    obs_t.append(env.step_seconds["observation"])
                    poses.append((env.time, env.cameras))
            # The parts of the observation, one at a time, at the same times and poses. Composition
            # is timed as a step sees it: the scene last composed the previous step's time (actors
            # that did not move since are reused), then the step's time, once.
            comp, rast, sky = [], [], []
            for k in range(1, len(poses), max(1, len(poses) // 5)):
                t, cams = poses[k]
                cams = cams.to(scene.device)
                with torch.no_grad():
                    runs = []
                    for _ in range(3):
                        scene.gaussians_at(poses[k - 1][0])
                        runs.append(_median_time(lambda t=t: (scene.gaussians_at(t), sync()), 1))
                    comp.append(tuple(statistics.median(r[i] for r in runs) for i in (0, 1)))
                    g = scene.gaussians_at(t)
                    rast.append(_median_time(lambda g=g, c=cams: (splatnet.render(g, c), sync()), 3))
                    if scene.sky is not None:
                        alpha = splatnet.render(g, cams).alpha[..., 0]
                        where = (1.0 - alpha > SKY_MIN_TRANSMITTANCE)[None]
                        batched = Cameras(cams.K[None], cams.cam_to_world[None], cams.width,
                                          cams.height, check=False)
                        sky.append(_median_time(lambda b=batched, w=where: (scene.sky.render(b, where=w),
                                                                           sync()), 3))
            def med(pairs, i):
                return statistics.median(p[i] for p in pairs) if pairs else 0.0

            row = {"cameras": count, "size": list(size), "step_s": statistics.median(total),
                   "steps_per_s": 1.0 / statistics.median(total),
                   "step_cpu_s": statistics.median(cpu),
                   "dynamics_s": statistics.median(dyn), "observation_s": statistics.median(obs_t),
                   "composition_s": med(comp, 0), "rasterise_s": med(rast, 0), "sky_s": med(sky, 0),
                   "composition_cpu_s": med(comp, 1), "rasterise_cpu_s": med(rast, 1),
                   "sky_cpu_s": med(sky, 1)}
            rows.append(row)
            print(row, flush=True)

    print(f"\n{source}: {scene.num_gaussians} Gaussians, {len(scene.actors)} actors; device "
          f"{scene.device}, {torch.get_num_threads()} threads\n")
    print("| cameras | size | step wall (ms) | steps/s | step CPU (ms) | dynamics | composition "
          "| rasterise | sky |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['cameras']} | {r['size'][0]}x{r['size'][1]} | {1e3 * r['step_s']:.0f} | "
              f"{r['steps_per_s']:.1f} | {1e3 * r['step_cpu_s']:.0f} | {1e3 * r['dynamics_s']:.1f} | "
              f"{1e3 * r['composition_cpu_s']:.0f} | {1e3 * r['rasterise_cpu_s']:.0f} | "
              f"{1e3 * r['sky_cpu_s']:.0f} |")
    print("(dynamics: wall ms inside step; composition, rasterise, sky: CPU ms, timed on their own)")
    out = {"source": source, "gaussians": scene.num_gaussians, "actors": len(scene.actors),
           "device": str(scene.device), "threads": torch.get_num_threads(),
           "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
           "load_average": os.getloadavg(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
           "steps": args.steps, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
