"""Held-out quality vs wall time of per-scene optimisation (classic 3DGS, initialised from LiDAR).

    python benchmarks/quality_vs_time.py                       # bundled example clip + DGP scene
    python benchmarks/quality_vs_time.py --iterations 0 100 300 1000 --downscale 2

For each clip and each iteration count, one independent ``optimize_clip`` run (schedules scale
with the run length, so a 300-step run is not the first 300 steps of a 3000-step run); the wall
time counts loading the training views, the initialisation and the optimisation, not the
evaluation. Held-out views: the rig cameras of the clip's default held-out frames (the middle
frame of a 3-frame clip: view interpolation, the classic protocol). When the clip also has
target cameras (views off the rig, harder: extrapolation), the same Gaussians are scored on
them too, in every frame.

Clips: the bundled ``examples/data/sample_clip``; when ``../shared/data/dgp_scene`` exists
and the DGP converter works, its ``scene_02`` converted with ``splatnet.clip.convert`` (skipped
with a note otherwise); with ``--synthetic-seeds``, procedural clips whose seeds the shipped
network never saw in training (generated once into ``--synthetic-cache``, 6 cameras x 3 frames at
``--synthetic-size``, scored at that size). Output: a Markdown table on stdout and in
``OUT/quality_vs_time.md``, the raw numbers in ``OUT/quality_vs_time.json`` and a plot
``OUT/quality_vs_time.png``.

``--inits network`` adds the feed-forward rows: the shipped network on the training views
(0 iterations: feed-forward alone; N: feed-forward + N steps of optimisation), scored on the same
held-out views, with the network's time counted as initialisation.

With both series present, the summary gives per clip the headline of issue 7: the wall time
optimisation from LiDAR needs to reach the feed-forward held-out PSNR (linear interpolation between
the two measured rows that bracket it; a lower bound when no row reaches it), divided by the
feed-forward time, and the PSNR refinement adds per second between consecutive ``network`` rows.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout

from splatnet.clip import Clip  # noqa: E402
from splatnet.io.atomic import atomic_write, atomic_write_text  # noqa: E402
from splatnet.optimization import evaluate  # noqa: E402
from splatnet.optimization.api import default_holdout_frames, image_size, optimize_clip  # noqa: E402

SAMPLE = REPO / "examples" / "data" / "sample_clip"
DGP = REPO.parent / "shared" / "data" / "dgp_scene"
FEED_FORWARD_NOTE = ("Start `network`: the shipped feed-forward model's Gaussians (rendered without "
                     "its sky model, like every row), then N optimisation steps; 0 = feed-forward "
                     "alone. Start `network+lidar`: the network's Gaussians plus the LiDAR initialisation, "
                     "then N steps. Start `network+sky`: feed-forward alone scored with the model's sky "
                     "model as the background, as `splatnet eval` scores it. Start `lidar`: "
                     "classic per-scene optimisation.")


def convert_dgp(tmp: Path) -> tuple[Path | None, str]:
    """The DGP scene converted into a clip under ``tmp``, or ``(None, why not)``."""
    if not DGP.is_dir():
        return None, f"{DGP} not found"
    try:
        from splatnet.clip.convert import convert
    except ImportError as exc:
        return None, f"no DGP converter ({exc})"
    src = DGP / "scene_02" if (DGP / "scene_02").is_dir() else DGP
    try:
        return convert("dgp", src, tmp / "dgp_scene_02"), ""
    except Exception as exc:  # noqa: BLE001 - any converter failure means: skip, with the reason
        try:
            return convert("dgp", DGP, tmp / "dgp_scene"), ""
        except Exception as exc2:  # noqa: BLE001
            return None, f"DGP conversion failed ({exc}; {exc2})"


def run_feed_forward_with_sky(name: str, path: Path, downscale: float, device: str, log) -> list[dict]:
    """One row: the shipped network with its sky model, scored as ``splatnet eval`` scores it, on
    the same held-out frames and size as the other rows (feed-forward only: optimisation has no
    sky model to continue from)."""
    from splatnet.io.checkpoint import load_model
    from splatnet.pipeline.evaluate import evaluate_clip

    clip = Clip.load(path)
    held = default_holdout_frames(clip.num_frames)
    size = image_size(clip, clip.rig_camera_names, downscale)
    model = load_model(device=device)
    evaluate_clip(clip, model, holdout_frames=held, size=size, device=device)  # warm-up
    r = evaluate_clip(clip, model, holdout_frames=held, size=size, device=device)
    t = r["timings"]
    seconds = t["load"] + t["network"] + t["postprocess"]
    log(f"{name:>12} {'ff+sky':>7} {0:>6} its  {seconds:8.1f} s  PSNR {r['psnr']:6.2f}  "
        f"SSIM {r['ssim']:.4f}  {r['gaussians']:>7} Gaussians")
    return [{"clip": name, "init": "network+sky", "iterations": 0, "seconds": seconds,
             "init_seconds": seconds, "fit_seconds": 0.0, "total_seconds_with_eval": seconds,
             "psnr": r["psnr"], "ssim": r["ssim"], "eval_views": len(r["per_view"]),
             "held_out": r["split"]["description"], "num_gaussians": r["gaussians"],
             "num_initial": r["gaussians"], "backend": "auto", "downscale": downscale,
             "target_psnr": None, "target_ssim": None, "target_views": 0}]


def run_clip(name: str, path: Path, iterations: list[int], downscale: float, max_gaussians: int | None,
             seed: int, device: str, log, init: str = "lidar") -> list[dict]:
    if init == "network+sky":
        return run_feed_forward_with_sky(name, path, downscale, device, log)
    rows = []
    clip = Clip.load(path)
    held = default_holdout_frames(clip.num_frames)
    for n in iterations:
        t0 = time.perf_counter()
        r = optimize_clip(path, iterations=n, init=init, downscale=downscale,
                          max_gaussians=max_gaussians, seed=seed, device=device,
                          holdout_frames=held or None)
        total = time.perf_counter() - t0
        target = None
        if clip.target_camera_names:
            views = clip.views(cameras=clip.target_camera_names,
                               size=image_size(clip, r.split.train_cameras, downscale))
            target = evaluate(r.gaussians, views)
        row = {
            "clip": name, "init": init, "iterations": n, "seconds": r.seconds, "init_seconds": r.init_seconds,
            "fit_seconds": r.fit.seconds, "total_seconds_with_eval": total,
            "psnr": r.metrics["psnr"], "ssim": r.metrics["ssim"], "eval_views": r.metrics["views"],
            "held_out": r.split.description, "num_gaussians": r.gaussians.num_gaussians,
            "num_initial": r.num_initial, "backend": r.fit.backend, "downscale": downscale,
            "target_psnr": None if target is None else target["psnr"],
            "target_ssim": None if target is None else target["ssim"],
            "target_views": 0 if target is None else len(target["per_view"]),
        }
        extra = "" if target is None else f"  targets: PSNR {target['psnr']:6.2f} SSIM {target['ssim']:.4f}"
        log(f"{name:>12} {init:>7} {n:>6} its  {r.seconds:8.1f} s  PSNR {row['psnr']:6.2f}  "
            f"SSIM {row['ssim']:.4f}  {row['num_gaussians']:>7} Gaussians{extra}")
        rows.append(row)
    return rows


def crossover(rows: list[dict], clip: str, start: str = "network") -> dict | None:
    """Feed-forward time vs the time optimisation from LiDAR needs to match its PSNR, for ``clip``
    (``start``: the feed-forward series, ``network`` or ``network+sky``)."""
    ff = [r for r in rows if r["clip"] == clip and r.get("init") == start and r["iterations"] == 0]
    opt = sorted((r for r in rows if r["clip"] == clip and r.get("init", "lidar") == "lidar"),
                 key=lambda r: r["seconds"])
    if not ff or not opt:
        return None
    goal, ff_s = ff[0]["psnr"], ff[0]["seconds"]
    out = {"clip": clip, "start": start, "feed_forward_psnr": goal, "feed_forward_seconds": ff_s}
    if opt[0]["psnr"] >= goal:
        out.update(optimisation_seconds=opt[0]["seconds"], bound="at most")
    else:
        for a, b in zip(opt, opt[1:]):
            if b["psnr"] >= goal:
                frac = (goal - a["psnr"]) / (b["psnr"] - a["psnr"])
                t = a["seconds"] + frac * (b["seconds"] - a["seconds"])
                out.update(optimisation_seconds=t, bound="about",
                           between=[a["iterations"], b["iterations"]])
                break
        else:
            out.update(optimisation_seconds=opt[-1]["seconds"], bound="more than")
    out["ratio"] = out["optimisation_seconds"] / ff_s
    net = sorted((r for r in rows if r["clip"] == clip and r.get("init") == "network"),
                 key=lambda r: r["iterations"])
    out["refinement"] = [
        {"from": a["iterations"], "to": b["iterations"], "gain_db": b["psnr"] - a["psnr"],
         "seconds": b["seconds"] - a["seconds"],
         "db_per_second": (b["psnr"] - a["psnr"]) / max(b["seconds"] - a["seconds"], 1e-9)}
        for a, b in zip(net, net[1:])]
    return out


def summary(rows: list[dict]) -> list[str]:
    lines = []
    for clip in dict.fromkeys(r["clip"] for r in rows):
        for start in ("network", "network+sky"):
            c = crossover(rows, clip, start)
            if c is None:
                continue
            where = (f" (between {c['between'][0]} and {c['between'][1]} iterations)"
                     if "between" in c else "")
            ratio = {"about": "≈", "at most": "≤", "more than": ">"}[c["bound"]]
            what = "feed-forward" if start == "network" else "feed-forward with its sky model"
            lines.append(f"- {clip}: {what} {c['feed_forward_psnr']:.2f} dB in "
                         f"{c['feed_forward_seconds']:.2f} s; optimisation from LiDAR needs "
                         f"{c['bound']} {c['optimisation_seconds']:.1f} s{where}: "
                         f"**{ratio} {c['ratio']:.0f}×**.")
        c = crossover(rows, clip)
        if c is not None and c["refinement"]:
            lines.append("  Refinement: " + "; ".join(
                f"{s['from']}→{s['to']} steps {s['gain_db']:+.2f} dB in {s['seconds']:.1f} s "
                f"({s['db_per_second']:+.3f} dB/s)" for s in c["refinement"]) + ".")
    return lines


def markdown(rows: list[dict], notes: list[str], header: str) -> str:
    lines = [header, "",
             "| clip | held-out views | start | iterations | wall time (s) | PSNR (dB) | SSIM | "
             "Gaussians | target cameras PSNR / SSIM |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        tgt = "n/a" if r["target_psnr"] is None else (
            f"{r['target_psnr']:.2f} / {r['target_ssim']:.4f} ({r['target_views']} views)")
        lines.append(f"| {r['clip']} | {r['held_out']} ({r['eval_views']}) | {r.get('init', 'lidar')} "
                     f"| {r['iterations']} | "
                     f"{r['seconds']:.1f} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['num_gaussians']} "
                     f"| {tgt} |")
    lines += ["", *[f"- {n}" for n in notes]]
    if head := summary(rows):
        lines += ["", "### Time optimisation needs to match feed-forward, and refinement per second",
                  "", *head]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    """PSNR (top) and SSIM (bottom) vs wall time, one column per clip, one line per start."""
    from splatnet._optional import require

    matplotlib = require("matplotlib", "the quality-vs-time plot", extra=None)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clips = list(dict.fromkeys(r["clip"] for r in rows))
    fig, axes = plt.subplots(2, len(clips), figsize=(3.6 * len(clips) + 0.6, 6.4), squeeze=False)
    for col, clip in enumerate(clips):
        for init, colour in (("lidar", "tab:blue"), ("network", "tab:red"),
                             ("network+lidar", "tab:purple"), ("network+sky", "tab:green")):
            rs = sorted((r for r in rows if r["clip"] == clip and r.get("init", "lidar") == init),
                        key=lambda r: r["seconds"])
            if not rs:
                continue
            t = [r["seconds"] for r in rs]
            for ax, key in zip(axes[:, col], ("psnr", "ssim")):
                ax.plot(t, [r[key] for r in rs], "o-", color=colour,
                        label=f"from {init}: held-out frames")
                if rs[0]["target_psnr"] is not None:
                    ax.plot(t, [r["target_" + key] for r in rs], "s--", color=colour, alpha=0.5,
                            label=f"from {init}: target cameras")
                for r in rs:
                    ax.annotate(str(r["iterations"]), (r["seconds"], r[key]), fontsize=7,
                                textcoords="offset points", xytext=(3, -9))
        axes[0, col].set_title(clip, fontsize=9)
        for ax, label in zip(axes[:, col], ("held-out PSNR (dB)", "held-out SSIM")):
            ax.set_xscale("log")
            ax.set_xlabel("wall time (s)", fontsize=8)
            ax.set_ylabel(label, fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(True, which="both", alpha=0.3)
    axes[0, 0].legend(fontsize=6)
    fig.suptitle("Held-out quality vs wall time (load + init + optimise)\nper-scene optimisation "
                 "from LiDAR vs the feed-forward network (0) + N refinement steps; labels: "
                 "iterations", fontsize=9)
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iterations", type=int, nargs="+", default=[0, 100, 300, 1000],
                   help="iteration counts, one run each (default: 0 100 300 1000)")
    p.add_argument("--downscale", type=float, default=2.0,
                   help="image downscale for the bundled clip (default 2: 224x128)")
    p.add_argument("--dgp-downscale", type=float, default=8.0,
                   help="image downscale for the DGP clip (default 8: 242x152)")
    p.add_argument("--max-gaussians", type=int, default=150_000, help="Gaussian cap (default 150000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--inits", nargs="+", default=["lidar"],
                   choices=("lidar", "network", "network+lidar", "network+sky"),
                   help="starting Gaussians, one series each (default: lidar); network+sky: "
                        "feed-forward alone scored with the network's sky model, as `splatnet "
                        "eval` does (one row; --iterations ignored)")
    p.add_argument("--no-dgp", action="store_true", help="skip the DGP clip")
    p.add_argument("--no-sample", action="store_true", help="skip the bundled example clip")
    p.add_argument("--synthetic-seeds", default="",
                   help="comma-separated seeds of held-out synthetic clips to add (e.g. 1000,1001; "
                        "the shipped model was trained on seeds below 1000)")
    p.add_argument("--synthetic-size", default="128x224",
                   help="size the synthetic clips are generated and scored at (default 128x224)")
    p.add_argument("--synthetic-cache", default="~/.cache/splatnet/synthetic",
                   help="where generated clips are kept between runs")
    p.add_argument("--append", action="store_true",
                   help="merge with the rows already in OUT/quality_vs_time.json (new runs replace "
                        "rows of the same clip and iteration count)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results",
                   help="output folder (default benchmarks/results)")
    p.add_argument("--note", action="append", default=[],
                   help="a note to add under the table (repeatable)")
    p.add_argument("--replot", action="store_true",
                   help="run nothing: rewrite the table, summary and plot from OUT/quality_vs_time.json")
    args = p.parse_args(argv)
    if args.replot:
        old = json.loads((args.out / "quality_vs_time.json").read_text())
        notes = _clean_notes(old["notes"]) + args.note
        _write_outputs(old["rows"], notes, old["machine"], args.out)
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    notes = [FEED_FORWARD_NOTE]
    rows = []
    if not args.no_sample:
        for init in args.inits:
            rows += run_clip("sample_clip", SAMPLE, args.iterations, args.downscale,
                             args.max_gaussians, args.seed, args.device, log, init)
    if args.synthetic_seeds:
        from splatnet.cli._args import size_hw
        from splatnet.train.data import synthetic_clips

        seeds = [int(s) for s in args.synthetic_seeds.split(",") if s.strip()]
        for seed, path in zip(seeds, synthetic_clips(seeds, 6, 3, size_hw(args.synthetic_size), 2,
                                                     args.synthetic_cache)):
            for init in args.inits:
                rows += run_clip(f"synthetic_{seed}", path, args.iterations, 1.0,
                                 args.max_gaussians, args.seed, args.device, log, init)
    if args.no_dgp:
        notes.append("DGP clip skipped (--no-dgp).")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path, why = convert_dgp(Path(tmp))
            if path is None:
                notes.append(f"DGP clip skipped: {why}.")
                log(f"skipping the DGP clip: {why}")
            else:
                for init in args.inits:
                    rows += run_clip("dgp_scene_02", path, args.iterations, args.dgp_downscale,
                                     args.max_gaussians, args.seed, args.device, log, init)
    machine = (f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
               f"torch {torch.__version__}, device {args.device}")
    command = ("Command: `python benchmarks/quality_vs_time.py "
               + " ".join(argv if argv is not None else sys.argv[1:]) + "`")
    previous = args.out / "quality_vs_time.json"
    if args.append and previous.is_file():
        old = json.loads(previous.read_text())
        def key(r: dict) -> tuple:
            return r["clip"], r.get("init", "lidar"), r["iterations"]

        new_keys = {key(r) for r in rows}
        rows = [r for r in old["rows"] if key(r) not in new_keys] + rows
        clips = list(dict.fromkeys(r["clip"] for r in old["rows"] + rows))
        rows.sort(key=lambda r: (clips.index(r["clip"]), r.get("init", "lidar") != "lidar",
                                 r["iterations"]))
        notes = _clean_notes(old["notes"])
        if machine != old["machine"]:
            notes.append(f"Rows appended on another setup: {machine}.")
        notes.append(command)
    else:
        notes.append(f"Machine: {machine}. Wall time = loading the training views + LiDAR "
                     "initialisation + optimisation (evaluation excluded); one independent run per "
                     "row.")
        notes.append(command)
    _write_outputs(rows, notes + args.note, machine, args.out)
    return 0


def _clean_notes(notes: list[str]) -> list[str]:
    """Stored notes minus those this version of the script writes itself."""
    kept = [n for n in notes if not n.startswith("DGP clip skipped")
            and not n.startswith("Feed-forward and feed-forward")
            and not n.startswith("Start `network`")]
    return [FEED_FORWARD_NOTE, *kept]


def _write_outputs(rows: list[dict], notes: list[str], machine: str, out: Path) -> None:
    text = markdown(rows, notes, "## Per-scene optimisation: held-out quality vs wall time")
    print(text)
    atomic_write_text(out / "quality_vs_time.md", text)
    atomic_write_text(out / "quality_vs_time.json",
                      json.dumps({"machine": machine, "rows": rows, "notes": notes}, indent=1) + "\n")
    plot(rows, out / "quality_vs_time.png")
    print(f"wrote {out}/quality_vs_time.{{md,json,png}}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
