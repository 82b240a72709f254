"""Size bounds checked before anything is allocated (splatnet/_limits.py): the renderer's
cameras and one network pass; the CLI's --size and the clip's images have their own tests."""

from __future__ import annotations

import pytest
import torch

import splatnet
from splatnet import Cameras, Gaussians, ValidationError
from splatnet._limits import MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE, MAX_NETWORK_PIXELS, check_image_size


def _scene(width: int, height: int):
    g = Gaussians(torch.zeros(1, 3) + torch.tensor([0.0, 0.0, 5.0]), torch.tensor([[1.0, 0, 0, 0]]),
                  torch.full((1, 3), 0.1), torch.tensor([0.5]), torch.zeros(1, 1, 3))
    K = torch.tensor([[[100.0, 0, width / 2], [0, 100.0, height / 2], [0, 0, 1]]])
    return g, Cameras(K, torch.eye(4)[None], width, height)


@pytest.mark.parametrize("w,h", [(100_000, 100_000), (MAX_IMAGE_SIDE + 1, 16), (4097, 4097)])
def test_render_refuses_a_huge_image_before_allocating(w, h):
    g, cams = _scene(w, h)
    with pytest.raises(ValidationError, match=rf"cameras: image size {h}x{w}: too large"):
        splatnet.render(g, cams, backend="torch")


def test_render_at_the_limits_is_accepted():
    assert check_image_size(MAX_IMAGE_SIDE, MAX_IMAGE_PIXELS // MAX_IMAGE_SIDE) == (8192, 2048)
    g, cams = _scene(64, 48)
    assert splatnet.render(g, cams, backend="torch").rgb.shape == (1, 48, 64, 3)


def test_network_pass_is_bounded_before_decoding(monkeypatch):
    from splatnet.clip import Clip
    from splatnet.pipeline.feedforward import prepare_inputs

    clip = Clip.load("examples/data/sample_clip")
    decoded = []
    monkeypatch.setattr(Clip, "views", lambda *a, **k: decoded.append(1))
    views = clip.num_frames * len(clip.rig_camera_names)
    side = 4096  # 2**24 pixels a view: within the per-image bound
    assert views * side * side > MAX_NETWORK_PIXELS
    with pytest.raises(ValidationError, match=r"input pixels, over the network's limit"):
        prepare_inputs(clip, 8, size=(side, side))
    assert not decoded
