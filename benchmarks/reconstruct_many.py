"""Memory of ``splatnet reconstruct`` over many clips: does resident memory stay flat?

    python benchmarks/reconstruct_many.py --clips 200 --size 64x112

Makes ``--clips`` clips that are hard-linked copies of the bundled example clip (no disk cost;
each is a separate directory the CLI loads, decodes and reconstructs from scratch), runs ONE
``splatnet reconstruct CLIP1 ... CLIPN --out-dir DIR`` process over all of them, and samples that
process's resident set size (``VmRSS`` in ``/proc/PID/status``) every ``--interval`` seconds
together with the number of PLY files written so far. Reports the RSS after the first clip, at
10 %, 50 % and 100 % of the clips, the peak, and the least-squares slope of RSS against clips done
over the second half of the run (MB per 100 clips; flat memory means a slope near zero).

Linux only (reads ``/proc``). Writes ``benchmarks/results/reconstruct_many.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "data" / "sample_clip"


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def slope(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=200, help="number of clips (default 200)")
    ap.add_argument("--size", default="64x112", help="network size (default 64x112: fast)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads in the CLI (default 1)")
    ap.add_argument("--interval", type=float, default=0.1, help="RSS sampling period (s)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "reconstruct_many.json"))
    args = ap.parse_args()
    if args.clips < 4:
        ap.error("--clips must be at least 4")

    with tempfile.TemporaryDirectory(prefix="splatnet-many-") as tmp:
        root = Path(tmp)
        clips = []
        for i in range(args.clips):
            dst = root / "clips" / f"clip_{i:04d}"
            shutil.copytree(SAMPLE, dst, copy_function=os.link)
            clips.append(str(dst))
        out_dir = root / "out"
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads),
               "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        cmd = [sys.executable, "-m", "splatnet", "reconstruct", *clips, "--out-dir", str(out_dir),
               "--size", args.size, "--quiet", "--json"]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        samples: list[tuple[float, int, float]] = []  # (seconds, clips done, RSS MB)
        while proc.poll() is None:
            mb = rss_mb(proc.pid)
            done = len(list(out_dir.glob("*.ply"))) if out_dir.is_dir() else 0
            if mb is not None:
                samples.append((time.perf_counter() - t0, done, mb))
            time.sleep(args.interval)
        stdout, stderr = proc.communicate()
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            print(stderr, file=sys.stderr)
            raise SystemExit(f"splatnet reconstruct exited {proc.returncode}")
        report = json.loads(stdout)

    def at(fraction: float) -> float:
        want = max(1, round(fraction * args.clips))
        after = [mb for _, done, mb in samples if done >= want]
        return after[0] if after else samples[-1][2]

    second_half = [(d, mb) for _, d, mb in samples if d >= args.clips // 2]
    per_100 = 100 * slope([d for d, _ in second_half], [mb for _, mb in second_half])
    doc = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "threads": args.threads,
        "clips": args.clips, "size": args.size, "failed": report["failed"], "wall_seconds": wall,
        "seconds_per_clip": wall / args.clips,
        "rss_mb": {"first_clip": at(1 / args.clips), "10%": at(0.1), "50%": at(0.5),
                   "100%": at(1.0), "peak": max(mb for _, _, mb in samples)},
        "slope_mb_per_100_clips_second_half": per_100,
        "samples": [[round(t, 2), d, round(mb, 1)] for t, d, mb in samples[:: max(1, len(samples) // 400)]],
    }
    r = doc["rss_mb"]
    print(f"{args.clips} clips at {args.size} in {wall:.1f} s ({doc['seconds_per_clip']:.2f} s/clip), "
          f"{report['failed']} failed")
    print(f"RSS MB: after first clip {r['first_clip']:.0f}, 10% {r['10%']:.0f}, 50% {r['50%']:.0f}, "
          f"100% {r['100%']:.0f}, peak {r['peak']:.0f}; slope over the second half "
          f"{per_100:+.1f} MB per 100 clips")
    sys.path.insert(0, str(REPO))
    from splatnet.io.atomic import atomic_write_text

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
