"""Time one SplatNet forward pass (the shipped model by default; ``--checkpoint none``: the code's
default config with untrained weights — speed depends on the config, not the weights).

    python benchmarks/reconstruct.py --cameras 6 --frames 3 --height 256 --width 448

Prints wall time (median of ``--repeat`` runs after a warm-up), the FLOP count from
``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matmuls; grid_sample, norms and
element-wise ops are not counted) and the number of Gaussians.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from splatnet import Cameras  # noqa: E402
from splatnet.models import SplatNet, SplatNetConfig  # noqa: E402


def surround_rig(cameras: int, frames: int, height: int, width: int, *, speed: float = 10.0,
                 dt: float = 0.1, device: str = "cpu") -> Cameras:
    """A ring of cameras on a car driving along +x (world z up), OpenCV camera frames."""
    K, poses, ts, names = [], [], [], []
    f = 0.6 * width
    for t in range(frames):
        for c in range(cameras):
            yaw = 2 * math.pi * c / cameras
            fwd = torch.tensor([math.cos(yaw), math.sin(yaw), 0.0])
            down = torch.tensor([0.0, 0.0, -1.0])
            pose = torch.eye(4)
            pose[:3, :3] = torch.stack([torch.linalg.cross(down, fwd), down, fwd], dim=1)
            pose[:3, 3] = torch.tensor([speed * dt * t, 0.0, 1.5]) + 0.5 * fwd
            poses.append(pose)
            K.append(torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]]))
            ts.append(t * dt)
            names.append(f"cam{c}")
    return Cameras(torch.stack(K)[None], torch.stack(poses)[None], width, height,
                   timestamps=torch.tensor(ts, dtype=torch.float64)[None], names=names).to(device)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cameras", type=int, default=6)
    p.add_argument("--frames", type=int, default=3)
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=448)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--checkpoint", default="default",
                   help="'default' (the shipped model), a model file / checkpoint, or 'none' "
                        "(SplatNetConfig() with random weights)")
    p.add_argument("--profile", action="store_true",
                   help="also print CPU time per stage (encoder, plane sweep, depth net, head)")
    p.add_argument("--flops-only", action="store_true",
                   help="only count FLOPs (e.g. for a GPU size on a machine without the GPU)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.checkpoint == "none":
        model = SplatNet(SplatNetConfig()).to(args.device).eval()
    else:
        from splatnet.io.checkpoint import load_model

        model = load_model(None if args.checkpoint == "default" else args.checkpoint,
                           device=args.device)
    cams = surround_rig(args.cameras, args.frames, args.height, args.width, device=args.device)
    v = args.cameras * args.frames
    images = torch.rand(1, v, 3, args.height, args.width, device=args.device)

    def run():
        out = model(images, cams)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return out

    # A baseline measured in the same run, interleaved with the model (these machines are
    # shared and noisy): one 64→64 3×3 convolution over V views at 1/4 resolution.
    base_x = torch.rand(v, 64, args.height // 4, args.width // 4, device=args.device)
    base_x = base_x.contiguous(memory_format=torch.channels_last)
    base_w = torch.rand(64, 64, 3, 3, device=args.device)
    base_flops = 2 * base_x.numel() * 64 * 9

    def baseline():
        torch.nn.functional.conv2d(base_x, base_w, padding=1)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    if args.flops_only:
        counter = FlopCounterMode(display=False)
        with torch.inference_mode(), counter:
            out = model(images, cams)
        print(f"SplatNet, {args.cameras} cameras x {args.frames} frames at "
              f"{args.width}x{args.height}: {counter.get_total_flops() / 1e9:.1f} GFLOP "
              f"(conv/matmul), {out.gaussians.num_gaussians} Gaussians")
        return

    with torch.inference_mode():
        run()  # warm-up
        baseline()
        times, cpu, ratios, base_times = [], [], [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            baseline()
            tb = time.perf_counter() - t0
            t0, c0 = time.perf_counter(), time.process_time()
            out = run()
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            t0 = time.perf_counter()
            baseline()
            tb = 0.5 * (tb + time.perf_counter() - t0)
            base_times.append(tb)
            ratios.append(times[-1] / tb)
        counter = FlopCounterMode(display=False)
        with counter:
            model(images, cams)
    params = sum(q.numel() for q in model.parameters())
    print(f"SplatNet ({args.checkpoint}, {model.config.cost_volume.num_candidates} depth "
          f"candidates): {params / 1e6:.2f} M parameters, {args.cameras} cameras x {args.frames} frames "
          f"at {args.width}x{args.height} on {args.device} ({torch.get_num_threads()} threads)")
    print(f"forward: {statistics.median(times):.3f} s (median of {args.repeat}; "
          f"min {min(times):.3f} s); process CPU time {statistics.median(cpu):.3f} s "
          f"(wall ≈ CPU time / threads when the machine is otherwise idle; load average "
          f"{os.getloadavg()[0]:.1f})")
    tb = statistics.median(base_times)
    print(f"baseline (64->64 3x3 conv, {v} views at 1/4 resolution): {tb * 1e3:.1f} ms = "
          f"{base_flops / tb / 1e9:.0f} GFLOP/s; forward / baseline = "
          f"{statistics.median(ratios):.1f}")
    print(f"FLOPs (conv/matmul): {counter.get_total_flops() / 1e9:.1f} GFLOP")
    print(f"Gaussians: {out.gaussians.num_gaussians}")
    if args.profile:
        with torch.inference_mode(), torch.profiler.profile() as prof:
            run()
        stages = {e.key: e.cpu_time_total / 1e6 for e in prof.key_averages()
                  if e.key.startswith("splatnet.")}
        total = sum(stages.values())
        print("stages (CPU-side time, profiled run): " + ", ".join(
            f"{k[len('splatnet.'):]} {t:.2f} s ({100 * t / total:.0f}%)" for k, t in stages.items()))


if __name__ == "__main__":
    main()
