"""A batch's summary: counts, throughput, failures and, for ``eval``, every metric aggregated over
the clips (mean, median, worst clips), as JSON and as a Markdown table."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

#: Eval metrics aggregated in the summary: (key in a results line's ``metrics``, higher is better).
METRICS = (("psnr", True), ("ssim", True), ("lpips", False), ("depth_abs_rel", False),
           ("depth_rmse_m", False), ("nearest_context_psnr", True), ("context_psnr", True),
           ("gaussians_only_psnr", True))
WORST = 5


def summarize(command: str, lines: Sequence[dict[str, Any]], new: Sequence[dict[str, Any]], *,
              skipped: int, failed_earlier: int, wall_seconds: float, startup_seconds: float,
              engine: str, workers: int) -> dict[str, Any]:
    """``lines``: the last results line of every clip of the run, in input order; ``new``: those
    written by this run; ``skipped``: clips whose output was complete; ``failed_earlier``: clips
    whose earlier failure was not retried."""
    ok = [x for x in lines if x.get("status") == "ok"]
    failed = [x for x in lines if x.get("status") != "ok"]
    stages: dict[str, list[float]] = {}
    for x in new:
        for k, v in (x.get("timings") or {}).items():
            stages.setdefault(k, []).append(float(v))
    busy = wall_seconds - startup_seconds
    run = {
        "processed": len(new),
        "ok": sum(x.get("status") == "ok" for x in new),
        "failed": sum(x.get("status") != "ok" for x in new),
        "skipped_complete": skipped,
        "failed_earlier_not_retried": failed_earlier,
        "retried_after_worker_death": sum(x.get("attempts", 1) > 1 for x in new),
        "engine": engine,
        "workers": workers,
        "wall_seconds": round(wall_seconds, 3),
        "startup_seconds": round(startup_seconds, 3),
        "clips_per_minute": round(60 * len(new) / wall_seconds, 2) if new and wall_seconds > 0
        else None,
        "clips_per_minute_after_startup": round(60 * len(new) / busy, 2) if new and busy > 0
        else None,
        "stage_seconds_mean": {k: round(statistics.fmean(v), 4) for k, v in stages.items()},
        "peak_rss_mb_max": max((x["peak_rss_mb"] for x in new if "peak_rss_mb" in x), default=None),
    }
    out: dict[str, Any] = {
        "command": command, "clips": len(lines), "ok": len(ok), "failed": len(failed),
        "this_run": run,
        "failures": [{"clip": x["clip"], "error": x.get("error", "")} for x in failed],
    }
    if command == "eval":
        out["metrics"] = aggregate(ok)
        ranked = sorted((x for x in ok if _number(x["metrics"].get("psnr"))),
                        key=lambda x: x["metrics"]["psnr"])
        out["worst"] = [{"clip": x["clip"], "output": x["output"],
                         **{k: x["metrics"].get(k) for k in ("psnr", "ssim", "lpips")}}
                        for x in ranked[:WORST]]
    return out


def aggregate(lines: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per metric over the clips that have it: mean, median, min, max and how many clips."""
    out = {}
    for key, _ in METRICS:
        values = [x["metrics"][key] for x in lines if _number(x["metrics"].get(key))]
        if values:
            out[key] = {"mean": statistics.fmean(values), "median": statistics.median(values),
                        "min": min(values), "max": max(values), "clips": len(values)}
    return out


def markdown(summary: dict[str, Any]) -> str:
    """The summary as a Markdown page."""
    run = summary["this_run"]
    rows = [f"# splatnet batch {summary['command']}", "",
            f"{summary['clips']} clips: {summary['ok']} ok, {summary['failed']} failed.", "",
            f"This run ({run['engine']}, {run['workers']} worker{'s' * (run['workers'] != 1)}): "
            f"{run['processed']} processed ({run['ok']} ok, {run['failed']} failed), "
            f"{run['skipped_complete']} already complete, {run['failed_earlier_not_retried']} "
            f"failed earlier and not retried, {run['retried_after_worker_death']} retried after a "
            f"worker died; {run['wall_seconds']:.1f} s"
            + (f", {run['clips_per_minute']:.1f} clips/min" if run["clips_per_minute"] else "")
            + "."]
    if run["stage_seconds_mean"]:
        rows += ["", "| stage | mean seconds per clip |", "|---|---:|"]
        rows += [f"| {k} | {v:.3f} |" for k, v in run["stage_seconds_mean"].items()]
    if summary.get("metrics"):
        rows += ["", "| metric | mean | median | worst | best | clips |",
                 "|---|---:|---:|---:|---:|---:|"]
        better = dict(METRICS)
        for key, m in summary["metrics"].items():
            worst, best = (m["min"], m["max"]) if better[key] else (m["max"], m["min"])
            rows.append(f"| {key} | {m['mean']:.4f} | {m['median']:.4f} | {worst:.4f} | "
                        f"{best:.4f} | {m['clips']} |")
    if summary.get("worst"):
        rows += ["", "Worst clips by PSNR:", "", "| clip | PSNR | SSIM |", "|---|---:|---:|"]
        rows += [f"| {w['clip']} | {w['psnr']:.2f} | {w['ssim']:.4f} |" for w in summary["worst"]]
    if summary["failures"]:
        rows += ["", "Failures:", ""]
        rows += [f"- {f['clip']}: {f['error']}" for f in summary["failures"]]
    return "\n".join(rows) + "\n"


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v
