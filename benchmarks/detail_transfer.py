"""The detail layer's settings on training clips (``model.detail_layer``: how far the rendered
depth may be from a context view's own for that view to give its detail, and the alpha a pixel
needs to take any): held-out scores of the shipped model with the layer at each setting, beside
the same renders without it (the report's ``gaussians_only``). What settings the model file
carries is chosen here, on clips that were trained on, never on the held-out ones
(docs/benchmarks.md, "The detail layer").

Clips: the training windows of PandaSet 002 (``--pandaset-windows``, frames t..t+2 at 128x224),
DGP ``scene_01`` (128x200) and synthetic training seeds (``--seeds``, 128x224; their held-out
target cameras off the logged path, and with ``--rig-frames`` also their rig cameras at frame 1).
Real clips hold out frame 1 from frames 0 and 2.

    python benchmarks/detail_transfer.py [--tolerances 0.02,0.05,0.1] [--min-alphas 0.5,0.9]
        [--seeds 20,30,5,40] [--pandaset-windows 0,9,18] [--no-real] [--rig-frames]
        [--out benchmarks/results/detail_settings.json]
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import feedforward_quality as fq  # noqa: E402 - after the path it is found on


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tolerances", type=_floats, default=[0.02, 0.05, 0.1])
    ap.add_argument("--min-alphas", type=_floats, default=[0.5, 0.9])
    ap.add_argument("--seeds", default="20,30,5,40", help="synthetic training seeds")
    ap.add_argument("--pandaset-windows", default="0,9,18",
                    help="first frame t of each PandaSet training window t..t+2")
    ap.add_argument("--no-real", action="store_true", help="synthetic clips only")
    ap.add_argument("--rig-frames", action="store_true",
                    help="also score the synthetic clips' rig cameras at frame 1")
    ap.add_argument("--real-cache", default="~/.cache/splatnet/real")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "detail_settings.json"))
    return ap.parse_args(argv)


def training_clips(args) -> list[tuple[str, Path, tuple[int, int], list[int] | None]]:
    """``(name, path, size, holdout_frames)`` of the training clips (converted when missing)."""
    from splatnet.clip.convert import convert
    from splatnet.train.data import synthetic_clips

    jobs = []
    if not args.no_real:
        cache = Path(args.real_cache).expanduser()
        data = Path(args.data).expanduser()
        dgp = cache / "dgp_scene_01"
        if not dgp.is_dir() and (data / "dgp_scene" / "scene_01").is_dir():
            convert("dgp", data / "dgp_scene" / "scene_01", dgp)
        if dgp.is_dir():
            jobs.append(("dgp_scene_01", dgp, fq.DGP_SIZE, [1]))
        h, w = fq.PANDASET_STORED
        for t in [int(x) for x in args.pandaset_windows.split(",") if x.strip()]:
            dst = cache / f"pandaset_002_f{t}-{t + 2}_{h}x{w}"
            if not dst.is_dir() and (data / "pandaset_002").is_dir():
                convert("pandaset", data / "pandaset_002", dst, frames=slice(t, t + 3),
                        size=fq.PANDASET_STORED)
            if dst.is_dir():
                jobs.append((dst.name, dst, fq.PANDASET_SIZE, [1]))
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    for path in synthetic_clips(seeds, 6, 3, (256, 448), 2, "~/.cache/splatnet/synthetic"):
        jobs.append((f"{path.name} (targets)", path, (128, 224), None))
        if args.rig_frames:
            jobs.append((f"{path.name} (rig, frame 1)", path, (128, 224), [1]))
    return jobs


def main(argv: list[str] | None = None) -> int:
    from splatnet.clip import Clip
    from splatnet.pipeline.evaluate import evaluate_clip

    args = parse_args(argv)
    started, base = fq.start_run(args.threads)
    settings = [(t, a) for t in args.tolerances for a in args.min_alphas]
    rows = []
    for name, path, size, holdout in training_clips(args):
        clip = Clip.load(path)
        row = {"clip": name, "size": list(size), "settings": []}
        for tol, alpha in settings:
            model = copy.deepcopy(base)
            model.config.detail_layer.enabled = True
            model.config.detail_layer.tolerance = tol
            model.config.detail_layer.min_alpha = alpha
            r = evaluate_clip(clip, model, holdout_frames=holdout, size=size)
            row["without"] = [r["gaussians_only"]["psnr"], r["gaussians_only"]["ssim"]]
            row["settings"].append({"tolerance": tol, "min_alpha": alpha,
                                    "with": [r["psnr"], r["ssim"]]})
        rows.append(row)
        print(f"{name}: without {row['without'][0]:.2f}; " + ", ".join(
            f"{s['tolerance']:g}/{s['min_alpha']:g} {s['with'][0]:.2f}" for s in row["settings"]),
            file=sys.stderr)
    fq.write_clip_rows(args.out, started, rows)
    head = ["clip", "without the layer"] + [f"tolerance {t:g}, alpha {a:g}" for t, a in settings]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print(f"| {r['clip']} | {r['without'][0]:.2f} / {r['without'][1]:.3f} | " + " | ".join(
            f"{s['with'][0]:.2f} / {s['with'][1]:.3f}" for s in r["settings"]) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
