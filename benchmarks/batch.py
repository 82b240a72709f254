"""Throughput of ``splatnet batch reconstruct``: engines local and Ray, 1 and 2 workers.

    python benchmarks/batch.py --clips 50 --size 64x112

Makes ``--clips`` synthetic clips with ``splatnet synth --count`` (cached in ``--data``), then for
each engine and worker count runs ``splatnet batch reconstruct DATA/* --out-dir OUT --json`` as
its own process (so every configuration pays its own start: Python, torch, the forkserver or the
Ray cluster, the workers' model loads) and reads its summary: wall seconds, start-up seconds,
clips per minute (whole run, and after start-up), mean seconds per stage, and the workers' peak
resident memory. Then it runs the same command again over the finished out-dir (the resume path:
every output checked, nothing redone) and times that (wall, and the process's own CPU seconds,
which do not depend on what else the machine runs). A sequential ``splatnet reconstruct
DATA/* --out-dir`` (one process, no workers) is the baseline. Configurations run in turn,
``--repeat`` rounds, each starting at the next configuration, so a background load that rises or
falls hits them alike; the table gives the median per configuration. Ray's overhead is its wall
time over local's at equal workers.

Torch threads: ``--threads-total`` split evenly over the workers (2 on this machine: 1 worker x
2 threads, or 2 workers x 1 thread), for both engines. Writes ``benchmarks/results/batch.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPLATNET = [sys.executable, "-m", "splatnet"]


def make_clips(data: Path, count: int, size: str, cameras: int, frames: int) -> list[Path]:
    """``count`` synthetic clips in ``data`` (reused when already there with these settings)."""
    stamp = data / "settings.json"
    want = {"count": count, "size": size, "cameras": cameras, "frames": frames}
    if stamp.is_file() and json.loads(stamp.read_text()) == want:
        return sorted(p for p in data.iterdir() if p.is_dir())
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    subprocess.run([*SPLATNET, "synth", str(data / "clips"), "--seed", "0", "--count", str(count),
                    "--size", size, "--cameras", str(cameras), "--frames", str(frames)],
                   check=True, stdout=subprocess.DEVNULL)
    for p in (data / "clips").iterdir():
        p.rename(data / p.name)
    (data / "clips").rmdir()
    stamp.write_text(json.dumps(want))
    return sorted(p for p in data.iterdir() if p.is_dir())


def run(cmd: list[str], env: dict) -> tuple[float, dict | None, float]:
    """``(wall seconds, the --json summary, CPU seconds of the process itself)``: its CPU time
    does not depend on what else the machine runs (its workers' is not in it)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr[-2000:]}")
    lines = [x for x in res.stdout.splitlines() if x.startswith("{")]
    return wall, (json.loads(lines[-1]) if lines else None), cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=50, help="synthetic clips (default 50)")
    ap.add_argument("--size", default="64x112", help="clip size HxW (default 64x112)")
    ap.add_argument("--cameras", type=int, default=2, help="cameras per clip (default 2)")
    ap.add_argument("--frames", type=int, default=3, help="frames per clip (default 3)")
    ap.add_argument("--threads-total", type=int, default=os.cpu_count() or 1,
                    help="torch threads shared by the workers (default: this machine's cores)")
    ap.add_argument("--repeat", type=int, default=2, help="rounds over the configurations")
    ap.add_argument("--checkpoint", default=None, help="model (default: the shipped one)")
    ap.add_argument("--data", default=str(Path(tempfile.gettempdir()) / "splatnet_batch_bench"))
    ap.add_argument("--engines", default="local,ray", help="engines to run (default local,ray)")
    ap.add_argument("--workers", default="1,2", help="worker counts (default 1,2)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "batch.json"))
    args = ap.parse_args()

    data = Path(args.data)
    t0 = time.perf_counter()
    clips = make_clips(data / "clips", args.clips, args.size, args.cameras, args.frames)
    print(f"{len(clips)} clips in {data / 'clips'} ({time.perf_counter() - t0:.0f} s)", flush=True)
    env = dict(os.environ, OMP_WAIT_POLICY="passive")
    ckpt = ["--checkpoint", args.checkpoint] if args.checkpoint else []
    configs = [(e, int(w)) for e in args.engines.split(",") for w in args.workers.split(",")]
    rows: dict[str, list[dict]] = {}
    for r in range(args.repeat):
        out = data / "seq"
        shutil.rmtree(out, ignore_errors=True)
        wall, _, _ = run([*SPLATNET, "reconstruct", *map(str, clips), "--out-dir", str(out),
                          "--quiet", "--json", *ckpt], dict(env, OMP_NUM_THREADS=str(args.threads_total)))
        rows.setdefault("sequential", []).append({"wall_seconds": wall,
                                                  "clips_per_minute": 60 * len(clips) / wall})
        print(f"round {r + 1}: sequential reconstruct {wall:.1f} s", flush=True)
        # each round starts the configurations at another place, so a load that rises or falls
        # during the run does not always favour the same one
        for engine, workers in configs[r % len(configs):] + configs[:r % len(configs)]:
            out = data / f"out_{engine}_{workers}"
            shutil.rmtree(out, ignore_errors=True)
            threads = max(1, args.threads_total // workers)
            cmd = [*SPLATNET, "batch", "reconstruct", str(data / "clips" / "*"), "--out-dir",
                   str(out), "--engine", engine, "--workers", str(workers), "--threads",
                   str(threads), "--quiet", "--json", *ckpt]
            wall, s, _ = run(cmd, env)
            resume_wall, s2, resume_cpu = run(cmd, env)
            assert s["ok"] == len(clips) and s2["this_run"]["processed"] == 0, (s, s2)
            t = s["this_run"]
            row = {"wall_seconds": wall, "run_wall_seconds": t["wall_seconds"],
                   "startup_seconds": t["startup_seconds"],
                   "clips_per_minute": 60 * len(clips) / wall,
                   "clips_per_minute_after_startup": t["clips_per_minute_after_startup"],
                   "stage_seconds_mean": t["stage_seconds_mean"],
                   "peak_rss_mb_per_worker": t["peak_rss_mb_max"],
                   "resume_wall_seconds": resume_wall, "resume_cpu_seconds": resume_cpu}
            rows.setdefault(f"{engine} x{workers}", []).append(row)
            print(f"round {r + 1}: {engine} x{workers}: {wall:.1f} s (start-up "
                  f"{t['startup_seconds']:.1f} s, {row['clips_per_minute']:.1f} clips/min, after "
                  f"start-up {t['clips_per_minute_after_startup']:.1f}); resume {resume_wall:.1f} s "
                  f"({resume_cpu:.1f} s CPU); "
                  f"peak RSS/worker {t['peak_rss_mb_max']:.0f} MB", flush=True)

    def med(rs: list[dict], key: str):
        vals = [x[key] for x in rs if x.get(key) is not None]
        return statistics.median(vals) if vals else None

    table = {}
    for name, rs in rows.items():
        table[name] = {k: med(rs, k) for k in rs[0] if k != "stage_seconds_mean"}
        if "stage_seconds_mean" in rs[0]:
            table[name]["stage_seconds_mean"] = {
                k: statistics.median(x["stage_seconds_mean"][k] for x in rs)
                for k in rs[0]["stage_seconds_mean"]}
    overhead = {}
    for w in args.workers.split(","):
        a, b = table.get(f"local x{w}"), table.get(f"ray x{w}")
        if a and b:
            overhead[f"x{w}"] = {
                "wall": b["wall_seconds"] / a["wall_seconds"] - 1,
                "after_startup": a["clips_per_minute_after_startup"]
                / b["clips_per_minute_after_startup"] - 1}
    result = {"clips": len(clips), "size": args.size, "cameras": args.cameras,
              "frames": args.frames, "threads_total": args.threads_total, "repeat": args.repeat,
              "checkpoint": args.checkpoint or "default", "machine": platform.platform(),
              "cpus": os.cpu_count(), "load_average_at_end": os.getloadavg(),
              "configs": table, "ray_overhead_vs_local": overhead, "rounds": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print("\n| configuration | wall s | start-up s | clips/min | clips/min after start-up | "
          "resume s (CPU s) | peak RSS/worker MB |\n|---|---:|---:|---:|---:|---:|---:|")
    for name, t in table.items():
        def f(k, fmt="{:.1f}", t=t):
            return fmt.format(t[k]) if t.get(k) is not None else "-"
        print(f"| {name} | {f('wall_seconds')} | {f('startup_seconds')} | "
              f"{f('clips_per_minute')} | {f('clips_per_minute_after_startup')} | "
              f"{f('resume_wall_seconds')} ({f('resume_cpu_seconds')}) | "
              f"{f('peak_rss_mb_per_worker', '{:.0f}')} |")
    for k, v in overhead.items():
        print(f"Ray vs local at {k}: wall {100 * v['wall']:+.1f} %, after start-up "
              f"{100 * v['after_startup']:+.1f} %")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
