"""``splatnet render``: PNG/MP4 outputs along a clip trajectory, lateral shift, no-overwrite."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from splatnet import Gaussians
from splatnet.cli import main
from splatnet.clip import Clip
from splatnet.pipeline.preview import colorize_depth

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data" / "sample_clip"


def _blob_in_front(clip: Clip, camera: str, frame: int, distance: float) -> Gaussians:
    """One opaque red Gaussian ``distance`` metres in front of a camera's centre."""
    c2w = torch.tensor(clip.cam_to_world(frame, camera), dtype=torch.float32)
    p = c2w[:3, 3] + c2w[:3, 2] * distance
    sh = torch.tensor([[[(1.0 - 0.5) / 0.28209479177387814, -0.5 / 0.28209479177387814,
                         -0.5 / 0.28209479177387814]]])
    return Gaussians(p[None], torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), 0.3),
                     torch.tensor([0.99]), sh)


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="bundled sample clip missing")
def test_render_writes_frames_video_and_respects_force(tmp_path: Path):
    clip = Clip.load(SAMPLE)
    cam = clip.rig_camera_names[0]
    ply = tmp_path / "g.ply"
    _blob_in_front(clip, cam, 0, 5.0).save_ply(ply)
    out = tmp_path / "out"
    args = ["render", str(ply), "--clip", str(SAMPLE), "-o", str(out), "--cameras", cam,
            "--frames", "0:2", "--size", "64x112", "--quiet"]
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["frames", "preview.png", "video.mp4"]
    img = iio.imread(out / "frames" / f"0000_{cam}.png")
    assert img.shape == (64, 224, 3)
    rgb, depth = img[:, :112], img[:, 112:]
    # The Gaussian sits on the optical axis: the principal point is red, a corner is background.
    k = clip.camera(cam).K
    u = int(k[0, 2] * 112 / clip.camera(cam).width)
    v = int(k[1, 2] * 64 / clip.camera(cam).height)
    assert rgb[v, u, 0] > 200 and rgb[v, u, 1] < 40 and rgb[v, u, 2] < 40
    assert (rgb[0, 0] == 0).all() and (depth[0, 0] == 0).all() and depth[v, u].any()
    assert (out / "video.mp4").stat().st_size > 0
    # No overwrite without --force; with it the directory is replaced.
    assert main(args) == 1
    assert main(args + ["--force", "--no-video"]) == 0
    assert not (out / "video.mp4").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="bundled sample clip missing")
def test_lateral_shift_moves_the_image(tmp_path: Path):
    from splatnet.pipeline.preview import render_clip_trajectory

    clip = Clip.load(SAMPLE)
    cam = clip.rig_camera_names[0]  # the front camera looks along ego +x; left is ego +y
    g = _blob_in_front(clip, cam, 0, 6.0)
    g = Gaussians(g.means, g.quats, torch.full((1, 3), 0.1), g.opacities, g.sh)
    base, shifted = (next(render_clip_trajectory(g, clip, frames=[0], cameras=[cam], size=(64, 112),
                                                 shift_lateral=s)) for s in (0.0, 1.0))

    def centroid_u(p):
        red = (p.rgb[..., 0] > 100).astype(float)
        return (red.sum(0) * np.arange(red.shape[1])).sum() / red.sum()

    # Moving the camera left moves a fixed point to the right in the image.
    assert centroid_u(shifted) > centroid_u(base) + 3


def test_colorize_depth_orders_near_warm():
    d = np.array([[2.0, 50.0, 0.0]])
    c = colorize_depth(d).astype(int)
    assert c[0, 0, 0] > c[0, 0, 2] and c[0, 1, 2] > c[0, 1, 0] and (c[0, 2] == 0).all()
