"""Network size vs output size: Gaussians do not depend on a resolution, so the network can run
at a size other than the one the scene is viewed at. Held-out views are scored at --output (the
clips' native 256x448 by default) with the network run at each of --network-sizes.

    python benchmarks/network_size.py [--checkpoint PATH] [--seeds 1000,1001,1002,1003]
        [--output 256x448] [--network-sizes 256x448,128x224,192x336] [--sample]

Prints a Markdown table; writes benchmarks/results/network_size.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    import torch

    import splatnet
    from splatnet.cli._args import size_hw
    from splatnet.pipeline.evaluate import evaluate_clip
    from splatnet.train.data import synthetic_clips

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None, help="model (default: the shipped one)")
    ap.add_argument("--seeds", default="1000,1001,1002,1003", help="held-out synthetic seeds")
    ap.add_argument("--output", type=size_hw, default=(256, 448), help="scoring size (HxW)")
    ap.add_argument("--network-sizes", default="256x448,128x224,192x336")
    ap.add_argument("--sample", action="store_true", help="also the bundled sample clip")
    ap.add_argument("--cache", default="~/.cache/splatnet/synthetic")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "network_size.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = splatnet.load_model(args.checkpoint)
    nets = [size_hw(s) for s in args.network_sizes.split(",")]
    paths = synthetic_clips([int(s) for s in args.seeds.split(",")], 6, 3, args.output, 2, args.cache)
    if args.sample:
        paths.append(REPO / "examples" / "data" / "sample_clip")
    rows = []
    for p in paths:
        clip = splatnet.Clip.load(p)
        for net in nets:
            t0 = time.perf_counter()
            r = evaluate_clip(clip, model, size=args.output, network_size=net)
            rows.append({"clip": Path(p).name, "network_size": list(net), "psnr": r["psnr"],
                         "ssim": r["ssim"], "context_psnr": r["context_views"]["psnr"],
                         "seconds": time.perf_counter() - t0})
    print(f"| network size | held-out PSNR / SSIM at {args.output[0]}x{args.output[1]} | "
          "context views PSNR |\n|---|---|---|")
    for net in nets:
        sel = [r for r in rows if tuple(r["network_size"]) == net and r["clip"].startswith("synth")]
        print(f"| {net[0]}x{net[1]} | {sum(r['psnr'] for r in sel) / len(sel):.2f} / "
              f"{sum(r['ssim'] for r in sel) / len(sel):.3f} | "
              f"{sum(r['context_psnr'] for r in sel) / len(sel):.2f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
