"""Quick timing of the C++ CPU renderer ops (project + rasterize, forward and backward).

Scene: a driving-like rig of C cameras looking outwards around the origin (yaw every 360/C
degrees), N Gaussians in a shell 3–40 m around it, log-uniform scales 3–30 cm, SH degree 3.
Prints per-stage times (best of --repeat) and the (Gaussian, tile) pairs of the binning.

    .venv/bin/python benchmarks/cpu_kernels.py --n 200000 --cameras 6 --width 448 --height 256
    .venv/bin/python benchmarks/cpu_kernels.py --n 100000 --torch   # plus the torch backend ratio
    .venv/bin/python benchmarks/cpu_kernels.py --scene street       # benchmarks/render.py's scene
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from splatnet.rendering import _ops  # noqa: E402


def driving_scene(n: int, cameras: int, width: int, height: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    r = 3.0 + 37.0 * torch.rand(n, generator=g) ** 2
    phi = 2 * math.pi * torch.rand(n, generator=g)
    y = -2.0 + 5.0 * torch.rand(n, generator=g)  # OpenCV-like: y down
    means = torch.stack([r * torch.cos(phi), y, r * torch.sin(phi)], -1)[None]
    quats = torch.randn(1, n, 4, generator=g)
    scales = torch.exp(math.log(0.03) + math.log(10.0) * torch.rand(1, n, 3, generator=g))
    opacities = torch.sigmoid(torch.randn(1, n, generator=g))
    sh = 0.3 * torch.randn(1, n, 16, 3, generator=g)
    viewmats = []
    for c in range(cameras):
        yaw = 2 * math.pi * c / cameras
        # camera looks along (cos yaw, 0, sin yaw) in the world's x-z plane.
        fwd = torch.tensor([math.cos(yaw), 0.0, math.sin(yaw)])
        down = torch.tensor([0.0, 1.0, 0.0])
        right = torch.linalg.cross(down, fwd)
        rot = torch.stack([right, down, fwd])  # rows: camera axes in world → world-to-camera
        vm = torch.eye(4)
        vm[:3, :3] = rot
        viewmats.append(vm)
    viewmats = torch.stack(viewmats)[None]
    f = 0.6 * width
    K = torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])
    Ks = K.expand(1, cameras, 3, 3).contiguous()
    return means, quats, scales, opacities, sh, viewmats, Ks


def run_once(scene, width, height, backend="cpu"):
    """Forward + backward of a full render (colours + depth channels); returns stage times."""
    from splatnet.rendering import reference

    proj, ras = (_ops.project, _ops.rasterize) if backend == "cpu" else (
        reference.project_reference, reference.rasterize_reference)
    leaves = [t.clone().requires_grad_(i < 5) for i, t in enumerate(scene)]
    c0 = time.process_time()
    t0 = time.perf_counter()
    m2d, con, dep, rad, op, col = proj(*leaves, width, height, 3, 0.01, 1e10, False)
    t1 = time.perf_counter()
    values = torch.cat([col, dep[..., None]], -1)
    img, alpha = ras(m2d, con, values, op, dep, rad, width, height, 16)
    t2 = time.perf_counter()
    loss = img.square().sum() + alpha.sum()
    loss.backward()
    t3 = time.perf_counter()
    cpu = time.process_time() - c0
    return {"project": t1 - t0, "rasterize": t2 - t1, "backward": t3 - t2, "total": t3 - t0,
            "cpu-time": cpu,
            "visible": int((rad > 0).all(-1).sum()), "alpha": float(alpha.detach().mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--cameras", type=int, default=6)
    ap.add_argument("--width", type=int, default=448)
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scene", choices=["ring", "street"], default="ring",
                    help="ring: driving_scene() here; street: benchmarks/render.py's street scene")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    ap.add_argument("--torch", action="store_true", help="also time the torch reference backend")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.scene == "street":
        from render import street_rig, street_scene  # benchmarks/render.py (same folder)

        g = street_scene(args.n)
        cams = street_rig(args.width, args.height)
        scene = [t[None].contiguous() for t in (g.means, g.quats, g.scales, g.opacities, g.sh)]
        scene += [cams.world_to_cam.float()[None].contiguous(), cams.K.float()[None].contiguous()]
    else:
        scene = driving_scene(args.n, args.cameras, args.width, args.height)
    print(f"# {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}, "
          f"{args.scene} scene, N={args.n}, C={scene[5].shape[1]}, {args.width}x{args.height}, "
          f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (wall times need an idle machine; "
          f"cpu-time is the process's CPU seconds)")
    with torch.no_grad():
        m2d, con, dep, rad, op, col = _ops.project(*scene, args.width, args.height, 3)
        out = torch.ops.splatnet.rasterize_forward(m2d, con, torch.cat([col, dep[..., None]], -1),
                                                   op, dep, rad, args.width, args.height, 16)
    pairs = out[3].numel()
    print(f"visible (gaussian, camera) pairs {int((rad > 0).all(-1).sum())}, "
          f"(gaussian, tile) pairs {pairs}, ≤ {pairs * 256 / 1e9:.2f} G pixel evaluations")
    best = None
    for _ in range(args.repeat):
        r = run_once(scene, args.width, args.height)
        best = r if best is None or r["total"] < best["total"] else best
    print("cpu   " + "  ".join(f"{k} {v:.3f}s" for k, v in best.items() if k in
                                ("project", "rasterize", "backward", "total", "cpu-time")))
    if args.torch:
        r = run_once(scene, args.width, args.height, backend="torch")
        print("torch " + "  ".join(f"{k} {v:.3f}s" for k, v in r.items() if k in
                                   ("project", "rasterize", "backward", "total")))
        print(f"cpu speed-up over torch (forward + backward): {r['total'] / best['total']:.1f}x")


if __name__ == "__main__":
    main()
