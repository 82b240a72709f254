"""Benchmark of ``splatnet.render`` through the public API: cpu vs torch backends (and, on a GPU,
cuda vs gsplat), forward and backward, on a deterministic street scene.

Scene: a 6-camera surround rig (yaws 0, ±55°, ±110°, 180°; 70° horizontal field of view) 1.6 m
above a street: road-surface splats, two building facades, clutter along the kerbs (cars,
poles, vegetation) and a far background shell, sized like a reconstruction (a few cm near the
rig, growing with distance; flat splats on surfaces), SH degree 3, mixed opacities.

Each case prints the forward time, the backward time and forward + backward (the best of the
repeats after one warm-up, as these machines are shared; the torch backend is run once, no
warm-up), plus the (pixel, Gaussian) pairs of the 16×16 tile lists per second: the work a tile
rasterizer has to consider (an upper bound on the blends actually done, since pixels stop
early). Ratios are measured in the same run. A full run takes about 15 minutes on 2 cores.

Real capture (issue 14): Gaussians optimised on a real clip have another distribution than the
street above (dense, overlapping splats: long tile lists that pixels walk to the end). By default:
DGP scene_01 (3 cameras; scene_02 is held out for evaluation elsewhere, so it is never optimised
on) converted from ``--data`` and optimised with ``splatnet optimize --init network+lidar
--iterations 100 --downscale 3`` (about 480k Gaussians, a few CPU minutes), cached outside the
repository in ``--real-cache``; rendered, cpu backend only, into frame 0's cameras at 405×645.
``--real-ply`` / ``--real-clip`` take another optimised scene and its clip. The case is skipped,
saying so, when neither the cache nor the data is there. Besides the render (projection +
rasterization) it times the rasterization op alone (wall and process CPU time) and reports its
work: the tile-list pairs; the pixels inside the Gaussians' screen boxes (what the per-Gaussian
row / column bounds let the blend loop evaluate); the pairs each pixel walks up to its last blend
(an upper bound on the blends done); and the floor those imply at the measured blend rate: pairs /
rate, both at ../shared/PERFORMANCE.md's 1.35 G blends/s (its 2-core roofline) and at the rate
this rasterizer reaches in the same run on a calibration tile load where every pair is a blend
(faint whole-image Gaussians).

    .venv/bin/python benchmarks/render.py            # full run
    .venv/bin/python benchmarks/render.py --quick    # a fast subset
    .venv/bin/python benchmarks/render.py --real-only  # the real capture's case alone
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

import splatnet  # noqa: E402
from splatnet.rendering import reference, render  # noqa: E402

TARGET_S = 1.5  # issue 3: 200k Gaussians × 6 cameras × 256×448, forward + backward, CPU
YAWS_DEG = (0.0, 55.0, -55.0, 110.0, -110.0, 180.0)
REPO = Path(__file__).resolve().parents[1]
ROOFLINE_RATE = 1.35e9  # blends/s on 2 cores: ../shared/PERFORMANCE.md (perf/blend_roofline.c)
# The real capture: DGP scene_01 (scene_02 is the held-out evaluation scene: never optimised on).
REAL_CLIP = "dgp_scene_01"
REAL_ITERATIONS, REAL_INIT, REAL_DOWNSCALE = 100, "network+lidar", 3.0
REAL_PLY = f"{REAL_CLIP}_{REAL_INIT.replace('+', '_')}_{REAL_ITERATIONS}.ply"


# ----------------------------------------------------------------------------- scene
def street_rig(width: int, height: int, device="cpu") -> splatnet.Cameras:
    """6 cameras 1.6 m above the origin; world frame x forward, y left, z up (metres)."""
    f = 0.5 * width / math.tan(math.radians(35.0))
    K = torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])
    poses = []
    for yaw in YAWS_DEG:
        c, s = math.cos(math.radians(yaw)), math.sin(math.radians(yaw))
        forward = torch.tensor([c, s, 0.0])
        right = torch.tensor([s, -c, 0.0])
        down = torch.tensor([0.0, 0.0, -1.0])
        m = torch.eye(4)
        m[:3, 0], m[:3, 1], m[:3, 2] = right, down, forward  # OpenCV camera axes in the world
        m[:3, 3] = torch.tensor([0.0, 0.0, 1.6])
        poses.append(m)
    return splatnet.Cameras(K.expand(6, 3, 3).clone(), torch.stack(poses), width, height).to(device)


def street_scene(n: int, seed: int = 0, device="cpu") -> splatnet.Gaussians:
    """N Gaussians of a street around the rig (deterministic for a given ``n`` and ``seed``)."""
    g = torch.Generator().manual_seed(seed)

    def u(*shape, lo=0.0, hi=1.0):
        return lo + (hi - lo) * torch.rand(*shape, generator=g)

    counts = [int(n * p) for p in (0.35, 0.30, 0.25)]
    counts.append(n - sum(counts))
    road_n, facade_n, clutter_n, far_n = counts
    # Road surface: flat splats on z = 0, 12 m wide, ±60 m along the street.
    road = torch.stack([u(road_n, lo=-60, hi=60), u(road_n, lo=-6, hi=6), u(road_n, lo=-0.02, hi=0.02)], -1)
    road_flat = torch.tensor([1.0, 1.0, 0.08])
    # Two facades at y = ±8 … ±10, up to 12 m high.
    side = torch.where(u(facade_n) < 0.5, -1.0, 1.0)
    facade = torch.stack([u(facade_n, lo=-60, hi=60), side * u(facade_n, lo=8, hi=10),
                          u(facade_n, lo=0, hi=12)], -1)
    facade_flat = torch.tensor([1.0, 0.08, 1.0])
    # Clutter along the kerbs: cars, poles, trees (2 m tall, rounder).
    side = torch.where(u(clutter_n) < 0.5, -1.0, 1.0)
    clutter = torch.stack([u(clutter_n, lo=-50, hi=50), side * u(clutter_n, lo=4, hi=8),
                           u(clutter_n, lo=0, hi=2.5)], -1)
    # Far background: a shell 60–150 m away, above the horizon.
    phi = u(far_n, lo=0, hi=2 * math.pi)
    r = u(far_n, lo=60, hi=150)
    far = torch.stack([r * torch.cos(phi), r * torch.sin(phi), u(far_n, lo=0, hi=40)], -1)

    means = torch.cat([road, facade, clutter, far])
    flat = torch.cat([road_flat.expand(road_n, 3), facade_flat.expand(facade_n, 3),
                      torch.ones(clutter_n + far_n, 3)])
    dist = (means - torch.tensor([0.0, 0.0, 1.6])).norm(dim=-1, keepdim=True)
    # Reconstructions grow their splats with distance: σ of about 1-2 pixels at 256×448.
    base = torch.exp(u(n, 3, lo=math.log(0.01), hi=math.log(0.06)))
    scales = base * (1 + dist / 12) * flat
    scales[-far_n:] *= 4
    quats = torch.randn(n, 4, generator=g)
    opacities = torch.sigmoid(1.5 * torch.randn(n, generator=g) + 1.0)
    sh = 0.15 * torch.randn(n, 16, 3, generator=g)
    sh[:, 0] = (u(n, 3) - 0.5) / 0.28209479177387814
    perm = torch.randperm(n, generator=g)  # no accidental depth order in memory
    return splatnet.Gaussians(means[perm], quats[perm], scales[perm], opacities[perm], sh[perm],
                              check=False).to(device)


# ----------------------------------------------------------------------------- measuring
def tile_pairs(g: splatnet.Gaussians, cams: splatnet.Cameras) -> tuple[int, str]:
    """(pixel, Gaussian) pairs in the 16×16 tile lists of all cameras, and a scene summary."""
    with torch.no_grad():
        args = (g.means[None], g.quats[None], g.scales[None], g.opacities[None], g.sh[None],
                cams.world_to_cam[None].to(g.dtype), cams.K[None].to(g.dtype), cams.width,
                cams.height, 0)
        try:  # the compiled projection is much faster; the reference gives the same radii
            from splatnet.rendering import _ops

            m2d, _, depths, radii, _, _ = _ops.project(*args)
        except splatnet.SplatnetError:
            m2d, _, depths, radii, _, _ = reference.project_reference(*args)
        ts = reference.TILE_SIZE
        tx, ty = math.ceil(cams.width / ts), math.ceil(cams.height / ts)
        total = 0
        for c in range(cams.num_cameras):
            _, offsets = reference._tile_lists(m2d[0, c].cpu(), radii[0, c].cpu(),
                                               depths[0, c].cpu(), tx, ty, ts)
            per_tile = (offsets[1:] - offsets[:-1]).reshape(ty, tx).double()
            w = torch.full((tx,), float(ts), dtype=torch.float64)
            h = torch.full((ty,), float(ts), dtype=torch.float64)
            w[-1] = cams.width - ts * (tx - 1)
            h[-1] = cams.height - ts * (ty - 1)
            total += int((per_tile * h[:, None] * w[None, :]).sum())
        vis = (radii > 0).all(-1)
        r = radii[vis].float() if bool(vis.any()) else torch.zeros(1, 2)
        summary = (f"{int(vis.sum()):,} visible (Gaussian, camera) pairs, radius median "
                   f"{float(r.median()):.0f} px, mean {float(r.mean()):.1f} px")
    return total, summary


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_backend(g, cams, backend: str, repeats: int, warmup: bool) -> tuple[float, float]:
    """Best-of-repeats (forward, backward) seconds of a training-style render + backward()."""
    leaves = [t.detach().clone().requires_grad_() for t in
              (g.means, g.quats, g.scales, g.opacities, g.sh)]
    gg = splatnet.Gaussians(*leaves, check=False)
    fwd, bwd = [], []
    for i in range(repeats + int(warmup)):
        for t in leaves:
            t.grad = None
        sync(g.device)
        t0 = time.perf_counter()
        out = render(gg, cams, backend=backend)
        loss = out.rgb.mean() + 0.01 * out.depth.mean() + out.alpha.mean()
        sync(g.device)
        t1 = time.perf_counter()
        loss.backward()
        sync(g.device)
        t2 = time.perf_counter()
        if i >= int(warmup):
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
        del out, loss
    return min(fwd), min(bwd)


def load_note() -> str:
    """The 1-minute load average, with a warning when other work competes for the cores."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return "unknown"
    cores = os.cpu_count() or 1
    busy = "  (WARNING: busier than the core count; multi-threaded timings are unreliable)"
    return f"{load:.1f} on {cores} cores" + (busy if load > cores else "")


@contextlib.contextmanager
def num_threads(k: int):
    old = torch.get_num_threads()
    torch.set_num_threads(k)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def pick_torch_threads(cams) -> int:
    """The faster intra-op thread count for the torch backend here (1 or all): on a loaded
    machine many small multi-threaded ops can be 10× slower than single-threaded ones, and the
    baseline should not be handicapped."""
    g = street_scene(5_000)
    best, best_t = None, math.inf
    for k in sorted({1, torch.get_num_threads()}):
        with num_threads(k), torch.no_grad():
            t0 = time.perf_counter()
            render(g, cams, backend="torch")
            t = time.perf_counter() - t0
        if t < best_t:
            best, best_t = k, t
    return best


def fmt_rate(pairs: int, seconds: float) -> str:
    return f"{pairs / seconds / 1e6:8.1f} M/s"


def row(label, n, size, pairs, fwd, bwd):
    tot = fwd + bwd
    print(f"  {label:<7} N={n:>8,} {size:>8}  fwd {fwd:8.3f} s  bwd {bwd:8.3f} s  "
          f"fwd+bwd {tot:8.3f} s   pairs {pairs / 1e6:8.1f} M  fwd {fmt_rate(pairs, fwd)}  "
          f"fwd+bwd {fmt_rate(pairs, tot)}", flush=True)


# ----------------------------------------------------------------------------- real capture
def real_capture(args) -> tuple[splatnet.Gaussians, splatnet.Cameras, str] | None:
    """The optimised real scene and frame 0's cameras (at the optimisation's size), building the
    clip and the scene into ``--real-cache`` when missing; None (and why, printed) when it cannot."""
    cache = Path(args.real_cache).expanduser()
    clip_dir = Path(args.real_clip).expanduser() if args.real_clip else cache / REAL_CLIP
    ply = Path(args.real_ply).expanduser() if args.real_ply else cache / REAL_PLY
    src = Path(args.data).expanduser() / "dgp_scene" / "scene_01"
    if args.real_ply and not ply.is_file():
        raise SystemExit(f"--real-ply: {ply} is not a file")
    if args.real_clip and not (clip_dir / "clip.json").is_file():
        raise SystemExit(f"--real-clip: {clip_dir} is not a clip directory (no clip.json)")
    if not (clip_dir / "clip.json").is_file():
        if not src.is_dir():
            print(f"  real capture skipped: no clip in {clip_dir} and no source data at {src} "
                  "(--data; real data is not part of the repository)")
            return None
        from splatnet.clip.convert import convert

        cache.mkdir(parents=True, exist_ok=True)
        convert("dgp", src, clip_dir, overwrite=False)
        print(f"  converted {src} into {clip_dir}")
    clip = splatnet.Clip.load(clip_dir)
    if not ply.is_file():
        from splatnet.optimization import optimize_clip

        print(f"  optimising {clip_dir.name} ({REAL_INIT}, {REAL_ITERATIONS} steps, downscale "
              f"{REAL_DOWNSCALE:g}) into {ply}: a few minutes, once", flush=True)
        t0 = time.perf_counter()
        result = optimize_clip(clip, iterations=REAL_ITERATIONS, init=REAL_INIT, downscale=REAL_DOWNSCALE,
                               seed=0)
        result.gaussians.to("cpu").save_ply(ply)
        n = result.gaussians.num_gaussians
        print(f"  optimised in {time.perf_counter() - t0:.0f} s: {n:,} Gaussians, held-out PSNR "
              f"{result.metrics['psnr']:.2f} dB")
    cam = clip.camera(clip.rig_camera_names[0])
    size = (max(16, round(cam.height / REAL_DOWNSCALE)), max(16, round(cam.width / REAL_DOWNSCALE)))
    cams = clip.views(frames=[0], size=size).cameras
    return splatnet.Gaussians.load_ply(ply), cams, f"{ply.name} on {clip_dir.name} frame 0"


def raster_inputs(g: splatnet.Gaussians, cams: splatnet.Cameras) -> tuple:
    """The rasterization op's inputs as ``render`` builds them (colours + depth channels)."""
    from splatnet.rendering import _ops

    with torch.no_grad():
        m2d, con, dep, rad, op, col = _ops.project(
            g.means[None], g.quats[None], g.scales[None], g.opacities[None], g.sh[None],
            cams.world_to_cam[None].to(g.dtype), cams.K[None].to(g.dtype), cams.width, cams.height,
            g.sh_degree)
    vals = torch.cat([col, dep[..., None]], -1).contiguous()
    return m2d, con, vals, op, dep, rad, cams.width, cams.height, reference.TILE_SIZE


def time_raster(inputs: tuple, repeats: int) -> tuple[tuple[float, float], tuple[float, float], tuple]:
    """Best-of-repeats (forward, backward) seconds of the rasterization op alone, as wall time and as
    this process's CPU time (steadier than wall time on a busy machine when single-threaded), and
    the forward's outputs."""
    m2d, con, vals, op, dep, rad, width, height, ts = inputs
    wall, cpu = [], []
    gen = torch.Generator().manual_seed(0)
    for i in range(repeats + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        out = torch.ops.splatnet.rasterize_forward(*inputs)
        t1, c1 = time.perf_counter(), time.process_time()
        if i == 0:
            v_img = torch.randn(out[0].shape, generator=gen)
            v_alpha = torch.randn(out[1].shape, generator=gen)
        t2, c2 = time.perf_counter(), time.process_time()
        torch.ops.splatnet.rasterize_backward(m2d, con, vals, op, rad, width, height, ts, out[2], out[3],
                                              out[4], out[5], v_img, v_alpha)
        t3, c3 = time.perf_counter(), time.process_time()
        if i > 0:  # the first run warms up
            wall.append((t1 - t0, t3 - t2))
            cpu.append((c1 - c0, c3 - c2))
    best = lambda ts: (min(t[0] for t in ts), min(t[1] for t in ts))  # noqa: E731
    return best(wall), best(cpu), out


def raster_work(inputs: tuple, out: tuple) -> dict[str, int]:
    """Pairs of the rasterization's work: in the tile lists, inside the screen boxes (pixel centres
    within mean ± radii, clipped to the image), and walked by the pixels up to their last blend."""
    m2d, _, _, _, _, rad, width, height, ts = inputs
    tile_offsets, last_ids = out[2], out[4]
    tx, ty = math.ceil(width / ts), math.ceil(height / ts)
    per_tile = (tile_offsets[1:] - tile_offsets[:-1]).double().reshape(-1, ty, tx)
    w = torch.full((tx,), float(ts), dtype=torch.float64)
    h = torch.full((ty,), float(ts), dtype=torch.float64)
    w[-1], h[-1] = width - ts * (tx - 1), height - ts * (ty - 1)
    vis = (rad > 0).all(-1)
    m, r = m2d[vis].double(), rad[vis].double()

    def span(c, rr, n):  # pixel centres i + 0.5 with |i + 0.5 − c| ≤ rr, 0 ≤ i < n
        lo = torch.ceil(c - rr - 0.5).clamp(min=0)
        hi = torch.floor(c + rr - 0.5).clamp(max=n - 1)
        return (hi - lo + 1).clamp(min=0)

    box = span(m[:, 0], r[:, 0], width) * span(m[:, 1], r[:, 1], height)
    return {"tile": int((per_tile * h[:, None] * w[None, :]).sum()), "box": int(box.sum()),
            "walked": int(last_ids.double().sum())}


def calibration_rate(repeats: int) -> float:
    """Blends per second of the rasterization op's forward when every tile-list pair is a blend: 3
    images of 256×448 under 200 faint (opacity 0.02) Gaussians each covering the whole image."""
    from splatnet.rendering import _ops  # noqa: F401  (loads the compiled ops)

    n, width, height = 200, 448, 256
    gen = torch.Generator().manual_seed(0)
    m2d = torch.stack([torch.rand(3, n, generator=gen) * width,
                       torch.rand(3, n, generator=gen) * height], -1)[None].contiguous()
    con = torch.tensor([1e-6, 0.0, 1e-6]).expand(1, 3, n, 3).contiguous()  # σ < 0.3: α ≈ o everywhere
    vals = torch.rand(1, 3, n, 4, generator=gen)
    op = torch.full((1, 3, n), 0.02)  # 0.98^200 ≈ 0.018: no pixel stops
    dep = torch.rand(1, 3, n, generator=gen) + 1.0
    rad = torch.full((1, 3, n, 2), 2 * max(width, height), dtype=torch.int32)
    inputs = (m2d, con, vals, op, dep, rad, width, height, reference.TILE_SIZE)
    best = math.inf
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        torch.ops.splatnet.rasterize_forward(*inputs)
        best = min(best, time.perf_counter() - t0)
    return 3 * n * width * height / best


def real_case(args, repeats: int) -> None:
    print("\n== real capture (issue 14), cpu backend only")
    real = real_capture(args)
    if real is None:
        return
    g, cams, what = real
    size = f"{cams.height}x{cams.width}"
    inputs = raster_inputs(g, cams)
    _, summary = tile_pairs(g, cams)
    print(f"  scene   {what}: N={g.num_gaussians:,}, {cams.num_cameras} cameras × {size} (H×W); {summary}")
    fwd, bwd = time_backend(g, cams, "cpu", repeats, warmup=True)
    (rf, rb), (cf, cb), out = time_raster(inputs, repeats)
    work = raster_work(inputs, out)
    rate = calibration_rate(repeats)
    row("render", g.num_gaussians, size, work["tile"], fwd, bwd)
    row("raster", g.num_gaussians, size, work["tile"], rf, rb)
    print(f"  raster  process CPU time: fwd {cf:.3f} s  bwd {cb:.3f} s  fwd+bwd {cf + cb:.3f} s "
          f"({torch.get_num_threads()} thread(s); with more than one it includes their waiting)")
    print(f"  work    pairs in the tile lists {work['tile'] / 1e6:.1f} M, inside the screen boxes "
          f"{work['box'] / 1e6:.1f} M, walked up to each pixel's last blend {work['walked'] / 1e6:.1f} M")
    for name, r in (("PERFORMANCE.md roofline", ROOFLINE_RATE), ("calibration, this run", rate)):
        floor = work["tile"] / r
        print(f"  floor   at {r / 1e9:.2f} G blends/s ({name}): tile pairs {floor:.3f} s, box pairs "
              f"{work['box'] / r:.3f} s;  raster fwd / tile floor {rf / floor:.2f}×, "
              f"render fwd / tile floor {fwd / floor:.2f}×, raster bwd / raster fwd {rb / rf:.2f}×")


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a fast subset (N ≤ 100k, one size)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per cpu/cuda case")
    p.add_argument("--torch-budget", type=float, default=300.0,
                   help="skip a torch-backend case whose estimated fwd+bwd exceeds this (s)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice); 1 "
                   "gives steadier timings on a busy machine")
    p.add_argument("--real-only", action="store_true", help="only the real capture's case")
    p.add_argument("--real-ply", help="an optimised scene for the real case (default: built into "
                   "--real-cache)")
    p.add_argument("--real-clip", help="the clip --real-ply was optimised on (its frame 0's rig cameras "
                   f"are rendered; default: {REAL_CLIP} in --real-cache)")
    p.add_argument("--real-cache", default="~/.cache/splatnet/bench",
                   help="where the real case's clip and scene are built (outside the repository)")
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data"),
                   help="real sample data (dgp_scene/scene_01 is converted and optimised once)")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats: expected a positive count")
    if args.threads is not None:
        if args.threads < 1:
            p.error("--threads: expected a positive count")
        torch.set_num_threads(args.threads)

    sizes = [(128, 224), (256, 448)] if not args.quick else [(128, 224)]
    ns = [10_000, 100_000, 200_000, 1_000_000] if not args.quick else [10_000, 100_000]
    repeats = 1 if args.quick else args.repeats
    print(f"splatnet render benchmark  {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"  machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; python {sys.version.split()[0]}")
    print(f"  command: {' '.join([os.path.basename(sys.argv[0])] + sys.argv[1:])}")
    print(f"  load average at start: {load_note()}")
    print("  scene: street, 6 cameras, SH degree 3; pairs = (pixel, Gaussian) pairs in the tile lists")

    if args.real_only:
        real_case(args, repeats)
        print(f"\nload average at the end: {load_note()}")
        return 0
    results = {}
    for height, width in sizes:
        cams = street_rig(width, height)
        size = f"{height}x{width}"
        print(f"\n== cpu vs torch, 6 cameras × {size} (H×W)")
        torch_rate = None  # torch-backend seconds per pair, from the last measured case
        torch_threads = pick_torch_threads(cams)
        print(f"  (torch backend runs with {torch_threads} thread(s): the faster setting here)")
        for n in ns:
            g = street_scene(n)
            pairs, summary = tile_pairs(g, cams)
            print(f"  scene   N={n:>8,} {size:>8}  {summary}")
            fwd, bwd = time_backend(g, cams, "cpu", repeats, warmup=True)
            row("cpu", n, size, pairs, fwd, bwd)
            results[("cpu", n, size)] = fwd + bwd
            estimate = None if torch_rate is None else torch_rate * pairs
            if estimate is not None and estimate > args.torch_budget:
                print(f"  torch   N={n:>8,} {size:>8}  not run: estimated {estimate:.0f} s from the "
                      f"previous case exceeds --torch-budget {args.torch_budget:.0f} s "
                      "(no ratio reported)")
                continue
            with num_threads(torch_threads):
                tf, tb = time_backend(g, cams, "torch", 1, warmup=False)
            row("torch", n, size, pairs, tf, tb)
            torch_rate = (tf + tb) / max(pairs, 1)
            results[("torch", n, size)] = tf + tb
            print(f"  ratio   torch/cpu: fwd {tf / fwd:6.1f}×   fwd+bwd {(tf + tb) / (fwd + bwd):6.1f}×"
                  "  (measured in this run)")

    key = ("cpu", 200_000, "256x448")
    if key in results:
        t = results[key]
        verdict = "meets" if t <= TARGET_S else "misses"
        print(f"\nTarget: 200k Gaussians × 6 cameras × 256×448 fwd+bwd on cpu: {t:.3f} s "
              f"({verdict} the {TARGET_S} s target)")

    real_case(args, repeats)
    print(f"\nload average at the end: {load_note()}")
    if torch.cuda.is_available():
        gpu_compare(ns, repeats=max(repeats, 5))
    else:
        print("\nNo CUDA device: cuda vs gsplat not measured.")
    return 0


def gpu_compare(ns, repeats: int) -> None:
    print(f"\n== cuda vs gsplat on {torch.cuda.get_device_name()}, 6 cameras × 256x448 and "
          "1080x1920")
    for height, width in [(256, 448), (1080, 1920)]:
        cams = street_rig(width, height, device="cuda")
        size = f"{height}x{width}"
        for n in ns:
            g = street_scene(n, device="cuda")
            pairs, summary = tile_pairs(g, cams)
            print(f"  scene   N={n:>8,} {size:>9}  {summary}")
            times = {}
            for backend in ("cuda", "gsplat"):
                try:
                    times[backend] = time_backend(g, cams, backend, repeats, warmup=True)
                except splatnet.SplatnetError as exc:
                    print(f"  {backend:<7} N={n:>8,} {size:>9}  unavailable: {exc}")
                    continue
                row(backend, n, size, pairs, *times[backend])
            if len(times) == 2:
                c, gs = sum(times["cuda"]), sum(times["gsplat"])
                print(f"  ratio   gsplat/cuda fwd+bwd: {gs / c:5.2f}× (> 1: ours faster)")


if __name__ == "__main__":
    raise SystemExit(main())
