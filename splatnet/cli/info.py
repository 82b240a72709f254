"""``splatnet info FILE``: what a splat file (PLY, compressed PLY, SPZ, glb) or a ``.scene`` holds."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="print statistics of a splat file (PLY, compressed PLY, SPZ, "
                                    "glb) or a scene",
                       description="Print format, count, SH degree, bounds, opacity and scale "
                                   "statistics, size on disk and the compression ratio against "
                                   "splatnet's PLY of the same Gaussians, for a splat file of any "
                                   "format splatnet reads (docs/formats.md); or, for a .scene "
                                   "file, its Gaussians, actors (labels, sizes, time spans), time "
                                   "span, rig and sky.")
    p.add_argument("file", help="a splat file (.ply, .compressed.ply, .spz, .glb) or a .scene file")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary")
    p.set_defaults(func=run)


def summarize(g) -> dict:
    """Statistics of one scene's Gaussians as plain Python numbers."""
    import torch

    n = g.num_gaussians
    out: dict = {"count": n, "sh_degree": g.sh_degree}
    if n == 0:
        return out
    means = g.means.detach().double()
    o = g.opacities.detach().double()
    s = g.scales.detach().double().amax(-1)

    def stats(x: torch.Tensor) -> dict:
        q = torch.quantile(x, torch.tensor([0.0, 0.5, 1.0], dtype=x.dtype))
        return {"min": float(q[0]), "median": float(q[1]), "max": float(q[2]),
                "mean": float(x.mean())}

    out["bounds_min"] = [float(v) for v in means.amin(0)]
    out["bounds_max"] = [float(v) for v in means.amax(0)]
    out["opacity"] = stats(o)
    out["max_scale"] = stats(s)
    out["nearly_transparent"] = int((o < 1 / 255).sum())
    return out


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from splatnet import Gaussians
    from splatnet.io.formats import FORMATS, input_format, ply_size

    if Path(args.file).suffix.lower() == ".scene":
        return _run_scene(args)
    fmt = input_format(args.file)
    g = Gaussians.load(args.file)
    size, ply = Path(args.file).stat().st_size, ply_size(g.num_gaussians, g.sh_degree)
    info = {"format": fmt, "size_bytes": size, "ply_size_bytes": ply,
            "compression_ratio": ply / size if size else None, **summarize(g)}
    if args.json:
        print(json.dumps({"file": args.file, **info}))
        return 0
    print(f"file:        {args.file}")
    print(f"format:      {fmt} ({FORMATS[fmt].description})")
    print(f"gaussians:   {info['count']}")
    print(f"sh degree:   {info['sh_degree']}")
    print(f"size:        {size:,} bytes; splatnet's PLY of these Gaussians: {ply:,} bytes "
          f"(ratio {ply / size:.2f})")
    if info["count"]:
        lo, hi = info["bounds_min"], info["bounds_max"]
        print("bounds:      " + "  ".join(f"{a:.3f}..{b:.3f}" for a, b in zip(lo, hi)))
        for key, label in (("opacity", "opacity:"), ("max_scale", "max scale:")):
            s = info[key]
            print(f"{label:<12} min {s['min']:.4g}  median {s['median']:.4g}  "
                  f"mean {s['mean']:.4g}  max {s['max']:.4g}")
        print(f"transparent: {info['nearly_transparent']} with opacity < 1/255")
    return 0


def summarize_scene(scene) -> dict:
    """What a scene holds, as plain Python data."""
    bg = scene.background
    return {
        "gaussians": scene.num_gaussians,
        "background": {"count": bg.num_gaussians, "sh_degree": bg.sh_degree,
                       "dynamic": bg.is_dynamic},
        "time_span": list(scene.time_span),
        "frames": scene.num_frames,
        "rig": [{"name": c.name, "width": c.width, "height": c.height} for c in scene.rig.cameras],
        "sky": scene.sky is not None,
        "colour": {n: m.round(6).tolist() for n, m in scene.colour.items()},
        "ego": None if scene.ego is None else scene.ego.summary(),
        "upsample_filter": None if scene.upsample is None else scene.upsample.sigma,
        "detail": None if scene.detail is None else scene.detail.summary(),
        "actors": [{"id": a.id, "label": a.label, "size": list(a.size),
                    "gaussians": a.gaussians.num_gaussians, "span": list(a.span),
                    "track_entries": len(a.track)} for a in scene.actors.values()],
        "metadata": dict(scene.metadata),
    }


def _run_scene(args: argparse.Namespace) -> int:
    from splatnet.scene import Scene

    info = summarize_scene(Scene.load(args.file))
    if args.json:
        print(json.dumps({"file": args.file, **info}))
        return 0
    bg, actors = info["background"], info["actors"]
    print(f"file:        {args.file}")
    print(f"gaussians:   {info['gaussians']} (background {bg['count']}, actors "
          f"{info['gaussians'] - bg['count']})")
    print(f"background:  SH degree {bg['sh_degree']}, "
          + ("dynamic (velocities, times)" if bg["dynamic"] else "static"))
    t0, t1 = info["time_span"]
    print(f"time span:   {t0:.3f}..{t1:.3f} s, {info['frames']} frame(s)")
    print("rig:         " + ", ".join(f"{c['name']} {c['width']}x{c['height']}" for c in info["rig"]))
    print(f"sky:         {'yes' if info['sky'] else 'none'}")
    gains = {n: "/".join(f"{m[i][i]:.2f}" for i in range(3)) for n, m in info["colour"].items()}
    print("colour:      " + (", ".join(f"{n} gain {g}" for n, g in gains.items())
                             if gains else "none (every camera sees the Gaussians' own colours)"))
    ego = info["ego"]
    print("ego layer:   " + ("none" if ego is None else f"{ego['masks']} masks, " + ", ".join(
        f"{n} {100 * f:.1f}%" for n, f in ego["cameras"].items())))
    up = info["upsample_filter"]
    print("upsample:    " + ("none" if up is None else
                             f"Gaussians widened above the network's size (sigma {up:g} px)"))
    det = info["detail"]
    print("detail:      " + ("none (renders show the Gaussians alone)" if det is None else
                             f"{det['views']} context views at {det['size'][0]}x{det['size'][1]}"
                             + (f" and {det['finer_size'][0]}x{det['finer_size'][1]}"
                                if "finer_size" in det else "")
                             + f" ({', '.join(det['cameras'])}): what the Gaussians miss in them, "
                             "added to renders through the depth"
                             + (f"; {det['actors']} tracked actors carry theirs"
                                if det.get("actors") else "")))
    print(f"actors:      {len(actors)}")
    for a in actors:
        size = "x".join(f"{v:.2f}" for v in a["size"])
        print(f"  {a['id']}  {a['label'] or '-'}  {size} m  {a['gaussians']} Gaussians  "
              f"{a['span'][0]:.3f}..{a['span'][1]:.3f} s ({a['track_entries']} track entries)")
    if info["metadata"]:
        print("metadata:    " + ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}"
                                         for k, v in info["metadata"].items()))
    return 0
