"""Held-out quality of the feed-forward network next to its floors and its input views, per clip,
on synthetic clips whose seeds were never used in training and on real footage.

For each clip every number is on the same held-out views at the same size:

- ``network``: one network pass over the context views, scored on the held-out views
  (``splatnet eval``'s path, :func:`splatnet.pipeline.evaluate.evaluate_clip`);
- ``nearest context`` (floor): the context image of the same camera (a target camera: the rig
  camera nearest in position) at the context frame nearest in time, scored as the prediction;
- ``LiDAR splats`` (floor): the LiDAR points of the context frames as Gaussians coloured from the
  context images (per-scene optimisation's LiDAR initialisation, zero steps, black background),
  at the same size;
- ``context views``: the network's Gaussians rendered back into its own input views (sky model
  behind, as for the held-out views): how well it reproduces what it saw;
- ``+N refinement`` (``--refine 50,200``): the network's Gaussians after N steps of
  :func:`splatnet.optimization.refine` on the context views (against the network's sky, as
  ``splatnet reconstruct --refine``), scored on the held-out views the same way;
- ``optimisation, same wall time`` (``--same-time``, the earlier baseline (b)): per-scene
  optimisation from LiDAR given the network's wall time.

Clips (``--which``):

- ``synthetic``: seeds ``--seeds`` (default 1000-1003, never trained on), 6 rig cameras x 3
  frames at 256x448 plus 2 target cameras (views 0.5-2 m off the rig), held out: the target
  cameras; run at each of ``--sizes``;
- ``dgp``: the real DGP ``scene_02`` clip (6 cameras x 3 frames, 1936x1216), held out: its
  middle frame; run at 128x200 (the README's size for it);
- ``pandaset``: PandaSet sequence 002, windows of 3 frames ``t, t+1, t+2`` for ``t`` in
  ``--pandaset-windows`` (default 30, 33, 36: frames 30-39 are this project's held-out PandaSet
  frames, never trained on), each converted at 270x480; context: frames t and t+2, held out: the
  middle frame; run at 128x224. PandaSet by Hesai and Scale AI (CC BY 4.0).

With ``--real-native`` the real clips are scored at their converted size instead (DGP
1216x1936, PandaSet 270x480; the network still runs at its working size, as ``splatnet eval``
does by default).

Real clips are converted once into ``--real-cache`` (default ``~/.cache/splatnet/real``) from
``--data`` (default ``../shared/data`` beside the repository); a missing source skips that clip
with a note.

    python benchmarks/feedforward_quality.py [--checkpoint PATH] [--which synthetic,dgp,pandaset]
        [--sizes 128x224,256x448] [--refine 50,200] [--same-time] [--real-native] [--out JSON]

Prints a Markdown table (one row per clip and size, means per group); writes ``--out`` (default
``benchmarks/results/feedforward_quality.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

KINDS = ("synthetic", "dgp", "pandaset")
DGP_SIZE = (128, 200)        # 1936x1216 -> the model's working height, width a multiple of 8
PANDASET_SIZE = (128, 224)   # 16:9 -> the model's working size
PANDASET_STORED = (270, 480)  # converted image size (a quarter of 1080x1920)


def _sizes(text: str) -> list[tuple[int, int]]:
    from splatnet.cli._args import size_hw

    return [size_hw(t) for t in text.split(",") if t.strip()]


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=None, help="model (default: the shipped one)")
    ap.add_argument("--which", default="synthetic,dgp,pandaset",
                    help=f"comma-separated clip groups of {', '.join(KINDS)} (default: all)")
    ap.add_argument("--seeds", default="1000,1001,1002,1003", help="held-out synthetic seeds")
    ap.add_argument("--clip-size", type=_sizes, default=[(256, 448)],
                    help="generated synthetic clip size (default 256x448)")
    ap.add_argument("--sizes", type=_sizes, default=[(128, 224)],
                    help="reconstruction/scoring sizes of the synthetic clips, e.g. 128x224,256x448 "
                         "(default 128x224; real clips run at 128x200 (DGP) and 128x224 (PandaSet))")
    ap.add_argument("--pandaset-windows", type=_ints, default=[30, 33, 36],
                    help="first frame t of each PandaSet window t..t+2 (default 30,33,36)")
    ap.add_argument("--real-native", action="store_true",
                    help="score the real clips at their converted size (DGP 1216x1936, PandaSet "
                         "270x480), the network at its working size, instead of at the network's "
                         "size")
    ap.add_argument("--refine", type=_ints, default=[],
                    help="also score the network + N refinement steps for each N, e.g. 50,200")
    ap.add_argument("--ego-masks", choices=["auto", "off"], default="auto",
                    help="estimate where a clip without camera masks shows the ego's own body "
                         "(auto, the default path) or not (off); see splatnet eval --no-ego-masks")
    ap.add_argument("--no-lidar", action="store_true",
                    help="withhold the clips' LiDAR from the network (evaluate_clip use_lidar=False)")
    ap.add_argument("--same-time", action="store_true",
                    help="also run per-scene optimisation from LiDAR for the network's wall time")
    ap.add_argument("--cache", default="~/.cache/splatnet/synthetic", help="synthetic clip cache")
    ap.add_argument("--real-cache", default="~/.cache/splatnet/real",
                    help="converted real clips (outside the repository)")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"),
                    help="real sample data (dgp_scene/, pandaset_002/)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "feedforward_quality.json"))
    args = ap.parse_args(argv)
    args.which = [k.strip() for k in args.which.split(",") if k.strip()]
    bad = [k for k in args.which if k not in KINDS]
    if bad:
        ap.error(f"--which: unknown {bad}; choose from {', '.join(KINDS)}")
    if any(n <= 0 for n in args.refine):
        ap.error("--refine: steps must be positive")
    return args


def add_real_clip_args(ap: argparse.ArgumentParser, windows: str) -> None:
    """The options of :func:`real_clips` for the scripts that take this one's real clips apart
    (``input_views.py``, ``scene_layers.py``): ``--which dgp,pandaset``, ``--pandaset-windows``
    (comma-separated; ``windows`` by default), ``--real-cache``, ``--data``."""
    ap.add_argument("--which", default="dgp,pandaset", help="dgp, pandaset or both")
    ap.add_argument("--pandaset-windows", default=windows,
                    help=f"first frame t of each PandaSet window t..t+2 (default {windows})")
    ap.add_argument("--real-cache", default="~/.cache/splatnet/real")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))


def start_run(threads: int):
    """``(started, model)`` for the scripts that take the shipped model's scenes apart: torch
    limited to ``threads``, the start time as ``YYYY-MM-DD HH:MM UTC`` and the shipped model."""
    import torch

    from splatnet.io.checkpoint import load_model

    torch.set_num_threads(threads)
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), load_model()


def write_clip_rows(out: str | Path, started: str, rows: list[dict]) -> None:
    """The JSON file of the scripts that take the real clips apart: ``{"started", "machine",
    "clips": rows}``, written atomically (its folder made when missing)."""
    import torch

    from splatnet.io.atomic import atomic_write_text

    doc = {"started": started, "machine": f"{platform.machine()}, {torch.get_num_threads()} torch "
           f"thread(s), torch {torch.__version__}", "clips": rows}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(doc, indent=1) + "\n")


def real_clips_of(args: argparse.Namespace) -> list[dict]:
    """:func:`real_clips` for the options :func:`add_real_clip_args` added (still as text), and
    ``real_native`` where the script has that option."""
    return real_clips(argparse.Namespace(
        which=[k.strip() for k in args.which.split(",") if k.strip()],
        pandaset_windows=[int(t) for t in args.pandaset_windows.split(",")],
        data=args.data, real_cache=args.real_cache,
        real_native=getattr(args, "real_native", False)))


def real_clips(args: argparse.Namespace) -> list[dict]:
    """The real clips to run, converted into the cache when missing: dicts of group, name, path,
    holdout_frames, size."""
    from splatnet.clip.convert import convert

    data = Path(args.data).expanduser()
    cache = Path(args.real_cache).expanduser()
    jobs = []
    if "dgp" in args.which:
        jobs.append(("dgp", "dgp_scene_02", data / "dgp_scene" / "scene_02", {}, DGP_SIZE))
    if "pandaset" in args.which:
        for t in args.pandaset_windows:
            h, w = PANDASET_STORED
            jobs.append(("pandaset", f"pandaset_002_f{t}-{t + 2}_{h}x{w}", data / "pandaset_002",
                         {"frames": slice(t, t + 3), "size": PANDASET_STORED}, PANDASET_SIZE))
    out = []
    for group, name, src, options, size in jobs:
        dst = cache / name
        if not (dst / "clip.json").is_file():
            if not src.is_dir():
                print(f"{name}: source {src} not found, skipped", file=sys.stderr)
                continue
            cache.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            convert(group, src, dst, overwrite=dst.exists(), **options)
            print(f"{name}: converted into {dst} in {time.perf_counter() - t0:.1f} s",
                  file=sys.stderr)
        out.append({"group": group, "name": name, "path": dst, "holdout_frames": [1],
                    "size": None if getattr(args, "real_native", False) else size})
    return out


def lidar_floor(clip, holdout_frames, size) -> dict | None:
    """Baseline (a) at exactly ``size``: the context frames' LiDAR points as Gaussians coloured
    from the context images, scored on the held-out views (``optimize_clip(iterations=0,
    init="lidar")`` without its size rounding: it sizes images by a downscale factor)."""
    import torch

    from splatnet.clip.split import split_views
    from splatnet.optimization import init as init_mod
    from splatnet.optimization.api import NUM_INIT_POINTS
    from splatnet.optimization.fit import OptimConfig, evaluate

    if not clip.has_lidar:
        return None
    t0 = time.perf_counter()
    cfg = OptimConfig()
    split = split_views(clip, holdout_frames)
    train = clip.views(split.train_frames, split.train_cameras, size=size)
    n_init = min(NUM_INIT_POINTS, cfg.densify.max_gaussians // 2) if cfg.densify.max_gaussians \
        else NUM_INIT_POINTS
    g = init_mod.init_lidar(clip, split.train_frames, train, n_init, cfg.sh_degree,
                            torch.Generator().manual_seed(0))
    seconds = time.perf_counter() - t0
    held = clip.views(split.eval_frames, split.eval_cameras, size=size)
    s = evaluate(g, held, background=cfg.background, antialiased=cfg.antialiased,
                 backend=cfg.backend)
    return {"psnr": s["psnr"], "ssim": s["ssim"], "seconds": seconds, "gaussians": g.num_gaussians}


def same_time(clip, holdout_frames, size, seconds: float) -> dict:
    """Baseline (b): per-scene optimisation from LiDAR for ``seconds`` (steps that fit, timed with
    a 5-step probe), at the height of ``size`` (optimize_clip's downscale)."""
    from splatnet.optimization.api import optimize_clip

    down = clip.camera(clip.rig_camera_names[0]).height / size[0]
    probe = optimize_clip(clip, iterations=5, init="lidar", holdout_frames=holdout_frames,
                          downscale=down)
    per_step = max(probe.fit.seconds / 5, 1e-6)
    steps = max(0, int((seconds - probe.init_seconds) / per_step))
    r = optimize_clip(clip, iterations=steps, init="lidar", holdout_frames=holdout_frames,
                      downscale=down)
    return {"psnr": r.metrics["psnr"], "ssim": r.metrics["ssim"], "seconds": r.seconds,
            "iterations": steps}


def run_clip(clip, model, group: str, name: str, size, holdout_frames, args) -> dict:
    from splatnet.optimization import refine
    from splatnet.pipeline.evaluate import evaluate_clip

    def refiner(n: int):
        return lambda g, views, bg: refine(g, views, n, backgrounds=bg)

    t0 = time.perf_counter()
    variants = {f"refine_{n}": refiner(n) for n in args.refine}
    r = evaluate_clip(clip, model, holdout_frames=holdout_frames, size=size, variants=variants,
                      ego_masks=args.ego_masks, use_lidar=not args.no_lidar)
    t = r["timings"]
    wall = t["load"] + t.get("ego_masks", 0.0) + t["network"] + t["postprocess"]
    row = {
        "group": group, "clip": name, "size": list(r["size"]),
        "held_out": r["split"]["description"], "held_out_views": len(r["per_view"]),
        "network": {"psnr": r["psnr"], "ssim": r["ssim"], "seconds": wall,
                    "network_seconds": t["network"], "gaussians": r["gaussians"]},
        "nearest_context": {k: r["nearest_context"][k] for k in ("psnr", "ssim")},
        "nearest_context_views": [[v["nearest_context"]["frame"], v["nearest_context"]["camera"]]
                                  for v in r["per_view"]],
        "context_views": {k: r["context_views"][k] for k in ("psnr", "ssim", "views")},
        "refined": {str(n): {k: r["variants"][f"refine_{n}"][k]
                             for k in ("psnr", "ssim", "seconds", "gaussians", "gaussians_only")
                             if k in r["variants"][f"refine_{n}"]}
                    for n in args.refine},
        # With the model's detail layer: what it held, and the held-out views without it.
        "detail": r.get("detail"),
        "gaussians_only": None if r.get("gaussians_only") is None else
        {k: r["gaussians_only"][k] for k in ("psnr", "ssim")},
        "depth_vs_lidar": r.get("depth_vs_lidar"),
        "ego": r.get("ego"),
        "scene": r.get("scene"),
    }
    row["lidar_splats"] = lidar_floor(clip, holdout_frames, tuple(r["size"]))
    if args.same_time and clip.has_lidar:
        row["optimisation_same_time"] = same_time(clip, holdout_frames, tuple(r["size"]), wall)
    row["bench_seconds"] = time.perf_counter() - t0
    return row


def _ps(d: dict | None) -> str:
    return "–" if d is None else f"{d['psnr']:.2f} / {d['ssim']:.3f}"


def table(rows: list[dict], refine_steps: list[int], with_same: bool) -> str:
    head = ["clip", "size", "held out", "network PSNR / SSIM", "Gaussians alone (no detail layer)",
            "nearest context (floor)",
            "LiDAR splats (floor)", "context views rendered back",
            *[f"network +{n} refinement" for n in refine_steps],
            *(["optimisation, same wall time (its)"] if with_same else [])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def cells(r: dict) -> list[str]:
        c = [_ps(r["network"]), _ps(r.get("gaussians_only")), _ps(r["nearest_context"]),
             _ps(r["lidar_splats"]),
             _ps(r["context_views"]), *[_ps(r["refined"][str(n)]) for n in refine_steps]]
        if with_same:
            s = r.get("optimisation_same_time")
            c.append("–" if s is None else f"{_ps(s)} ({s['iterations']})")
        return c

    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["group"], tuple(r["size"])), []).append(r)
        lines.append(f"| {r['clip']} | {r['size'][0]}x{r['size'][1]} | {r['held_out']} | "
                     + " | ".join(cells(r)) + " |")
    for (group, size), rs in groups.items():
        def mean(key: str, sub: str | None = None, rs=rs) -> dict | None:
            vals = [(r.get(key) if sub is None else r[key].get(sub)) for r in rs]
            if any(v is None for v in vals):
                return None
            return {"psnr": sum(v["psnr"] for v in vals) / len(vals),
                    "ssim": sum(v["ssim"] for v in vals) / len(vals)}

        c = [mean("network"), mean("gaussians_only"), mean("nearest_context"), mean("lidar_splats"),
             mean("context_views"), *[mean("refined", str(n)) for n in refine_steps]]
        extra = [_ps(mean("optimisation_same_time"))] if with_same and all(
            "optimisation_same_time" in r for r in rs) else (["–"] if with_same else [])
        lines.append(f"| **mean {group}** ({len(rs)}) | {size[0]}x{size[1]} | | "
                     + " | ".join(_ps(x) for x in c) + (" | " + extra[0] if extra else "")
                     + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    import torch

    from splatnet.clip import Clip
    from splatnet.io.atomic import atomic_write_text
    from splatnet.io.checkpoint import load_model
    from splatnet.train.data import synthetic_clips

    torch.set_num_threads(args.threads)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    model = load_model(args.checkpoint)
    rows = []
    if "synthetic" in args.which:
        seeds = _ints(args.seeds)
        for path in synthetic_clips(seeds, 6, 3, args.clip_size[0], 2, args.cache):
            clip = Clip.load(path)
            for size in args.sizes:
                rows.append(run_clip(clip, model, "synthetic", path.name, size, None, args))
                print(f"{path.name} at {size[0]}x{size[1]}: done", file=sys.stderr)
    for job in real_clips(args):
        clip = Clip.load(job["path"])
        rows.append(run_clip(clip, model, job["group"], job["name"], job["size"],
                             job["holdout_frames"], args))
        print(f"{job['name']}: done", file=sys.stderr)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0

    print(f"\n## Held-out views, floors and input views ({args.checkpoint or 'shipped model'})\n")
    print(table(rows, args.refine, args.same_time))
    print(f"\n{len(rows)} runs; {cpu:.0f} s CPU, {wall:.0f} s wall, {torch.get_num_threads()} "
          "torch thread(s)")
    doc = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "machine": platform.machine(), "cpus": os.cpu_count(), "torch": torch.__version__,
           "threads": torch.get_num_threads(), "checkpoint": args.checkpoint or "default",
           "which": args.which, "sizes": [list(s) for s in args.sizes],
           "refine": args.refine, "cpu_seconds": cpu, "wall_seconds": wall, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(doc, indent=2) + "\n")
    print(f"\nwritten {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
