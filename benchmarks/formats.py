"""Size on disk and render fidelity of every splat format on the demo scene, and the baked sky.

The demo scene is ``splatnet reconstruct examples/data/sample_clip -o demo.scene`` (the shipped
model; pass ``--scene`` to reuse one). For each frame, the scene's snapshot at that frame's time is
written in each format, read back, and rendered from the rig's six cameras at 128×224 with the
scene's sky composited, as splatnet renders; PSNR is against the render of the lossless PLY.
The baked sky (``export --bake-sky``): the snapshot plus the sky shell rendered on black, against
splatnet's render with its sky model, and both against the clip's images.

    python benchmarks/formats.py --scene demo.scene --out benchmarks/results/formats.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "examples" / "data" / "sample_clip"
FORMATS = [("ply", "s.ply"), ("compressed-ply", "s.compressed.ply"), ("spz", "s.spz"),
           ("glb", "s.glb"), ("splat", "s.splat")]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scene", type=Path, default=None, help="a demo .scene (default: reconstruct one)")
    p.add_argument("--size", default="128x224", help="render size HxW")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = p.parse_args()

    from splatnet import Cameras, Clip, Gaussians, render
    from splatnet.metrics import psnr
    from splatnet.scene import Scene
    from splatnet.scene.sky_bake import sky_shell

    tmp = Path(tempfile.mkdtemp())
    scene_path = args.scene
    if scene_path is None:
        scene_path = tmp / "demo.scene"
        subprocess.run([sys.executable, "-m", "splatnet", "reconstruct", str(CLIP), "-o",
                        str(scene_path)], check=True)
    scene = Scene.load(scene_path)
    h, w = (int(v) for v in args.size.split("x"))
    clip = Clip.load(CLIP)

    def cameras(frame: int) -> Cameras:
        full = scene.frame_cameras(frame)
        K = full.K.clone()
        K[:, 0] *= w / full.width
        K[:, 1] *= h / full.height
        return Cameras(K, full.cam_to_world, w, h, timestamps=full.timestamps, names=full.names)

    def with_sky(g: Gaussians, cams: Cameras) -> torch.Tensor:
        return scene.replace(background=g, actors=[]).render(cams).rgb.clamp(0, 1)

    results = {"scene": str(scene_path), "size": [h, w], "formats": {}, "sky": {}}
    per_format = {name: {"bytes": [], "psnr": [], "write_s": [], "read_s": []} for name, _ in FORMATS}
    sky_rows = []
    for frame in range(scene.num_frames):
        t = float(scene.frame_times[frame])
        cams = cameras(frame)
        snap = scene.to_gaussians(t)
        ref = None
        for name, file in FORMATS:
            path = tmp / f"{frame}_{file}"
            t0 = time.perf_counter()
            snap.save(path)
            t1 = time.perf_counter()
            # .splat is written, not read, by splatnet: decode it here (32-byte records).
            g = _read_splat(path) if name == "splat" else Gaussians.load(path)
            t2 = time.perf_counter()
            img = with_sky(g, cams)
            if ref is None:
                ref = img
            row = per_format[name]
            row["bytes"].append(path.stat().st_size)
            row["psnr"].append(float(psnr(img, ref).mean()) if name != "ply" else float("inf"))
            row["write_s"].append(t1 - t0)
            row["read_s"].append(t2 - t1)
        images = clip.views(frames=[frame], cameras=cams.names, size=(h, w)).images
        shell = sky_shell(scene, sh_degree=snap.sh_degree)
        splatnet_img = scene.render(cams).rgb.clamp(0, 1)
        baked = render(Gaussians.cat([snap, shell]), cams).rgb.clamp(0, 1)
        plain = render(snap, cams).rgb.clamp(0, 1)
        sky_rows.append({
            "frame": frame, "shell_gaussians": shell.num_gaussians,
            "baked_vs_splatnet_db": float(psnr(baked, splatnet_img).mean()),
            "no_sky_vs_splatnet_db": float(psnr(plain, splatnet_img).mean()),
            "splatnet_vs_images_db": float(psnr(splatnet_img, images).mean()),
            "baked_vs_images_db": float(psnr(baked, images).mean()),
            "no_sky_vs_images_db": float(psnr(plain, images).mean())})
        print(json.dumps(sky_rows[-1]))
    for name, row in per_format.items():
        results["formats"][name] = {
            "bytes": sum(row["bytes"]) / len(row["bytes"]),
            "ratio_vs_ply": sum(per_format["ply"]["bytes"]) / sum(row["bytes"]),
            "psnr_vs_ply_db": min(row["psnr"]), "write_s": sum(row["write_s"]) / len(row["write_s"]),
            "read_s": sum(row["read_s"]) / len(row["read_s"])}
        print(name, json.dumps(results["formats"][name]))
    results["sky"] = sky_rows
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


def _read_splat(path: Path):
    import numpy as np

    from splatnet import Gaussians
    from splatnet.io.splat import SPLAT_DTYPE
    from splatnet.sh import SH_C0

    rec = np.frombuffer(path.read_bytes(), SPLAT_DTYPE)
    rgba = rec["rgba"].astype(np.float64) / 255.0
    q = (rec["rot"].astype(np.float64) - 128.0) / 128.0
    q[np.linalg.norm(q, axis=1) == 0] = [1, 0, 0, 0]
    sh = ((rgba[:, :3] - 0.5) / SH_C0)[:, None, :]
    return Gaussians(*(torch.from_numpy(np.ascontiguousarray(a)).float() for a in
                       (rec["position"], q, rec["scale"], rgba[:, 3], sh)))


if __name__ == "__main__":
    raise SystemExit(main())
