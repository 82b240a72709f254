"""``splatnet info FILE``: what a Gaussian PLY holds."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="print statistics of a Gaussian splat PLY file",
                       description="Print count, SH degree, bounds, opacity and scale statistics "
                                   "of a 3DGS PLY file.")
    p.add_argument("file", help="a 3DGS .ply file")
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
    from splatnet import Gaussians

    g = Gaussians.load_ply(args.file)
    info = summarize(g)
    if args.json:
        print(json.dumps({"file": args.file, **info}))
        return 0
    print(f"file:        {args.file}")
    print(f"gaussians:   {info['count']}")
    print(f"sh degree:   {info['sh_degree']}")
    if info["count"]:
        lo, hi = info["bounds_min"], info["bounds_max"]
        print("bounds:      " + "  ".join(f"{a:.3f}..{b:.3f}" for a, b in zip(lo, hi)))
        for key, label in (("opacity", "opacity:"), ("max_scale", "max scale:")):
            s = info[key]
            print(f"{label:<12} min {s['min']:.4g}  median {s['median']:.4g}  "
                  f"mean {s['mean']:.4g}  max {s['max']:.4g}")
        print(f"transparent: {info['nearly_transparent']} with opacity < 1/255")
    return 0
