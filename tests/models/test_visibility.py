"""Cross-view visibility (splatnet.models.visibility, SplatNet's ``visibility`` option): the
Gaussians found in front of another same-frame view's surface, against a float64 brute force and
a scene built by hand; the option's effect on the network's output."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from splatnet.cameras import Cameras
from splatnet.errors import ValidationError
from splatnet.models import SplatNet, SplatNetConfig
from splatnet.models.config import VisibilityConfig
from splatnet.models.cost_volume import frame_ranks
from splatnet.models.visibility import in_front_of_other_views
from tests.models.test_model import surround_rig


def _brute(means, depth, cameras, frames, margin):
    """Per Gaussian, per other view of its frame, in float64 Python loops."""
    b, v, _, h, w = depth.shape
    n = means.shape[1]
    out = torch.zeros(b, n, dtype=torch.bool)
    for bi in range(b):
        for g in range(n):
            src = g // (n // v)
            p = means[bi, g].double()
            for u in range(v):
                if u == src or frames[bi][u] != frames[bi][src]:
                    continue
                c2w = cameras.cam_to_world[bi, u].double()
                cam = c2w[:3, :3].T @ (p - c2w[:3, 3])
                if cam[2] <= 0:
                    continue
                uv = cameras.K[bi, u].double() @ cam
                x, y = float(uv[0] / uv[2]), float(uv[1] / uv[2])
                col = math.floor(x * w / cameras.width)
                row = math.floor(y * h / cameras.height)
                if not (0 <= col < w and 0 <= row < h):
                    continue
                if float(cam[2]) < float(depth[bi, u, 0, row, col]) * (1 - margin):
                    out[bi, g] = True
    return out


@pytest.mark.parametrize("margin", [0.0, 0.2])
def test_matches_a_float64_brute_force(margin):
    g = torch.Generator().manual_seed(1)
    rig = surround_rig(2, 3, 2, 16, 24)  # 3 cameras x 2 frames, two scenes
    h, w = 8, 12
    depth = 2.0 + 20.0 * torch.rand(2, 6, 1, h, w, generator=g)
    depth[0, 1, 0, :2] = float("inf")  # cells that hide nothing
    centres = rig.cam_to_world[..., :3, 3]
    means = (centres.mean(1, keepdim=True) + 15.0 * (torch.rand(2, 6 * h * w, 3, generator=g) - 0.5))
    means[..., 2] = 1.5 + 2.0 * (torch.rand(2, 6 * h * w, generator=g) - 0.5)
    frames = frame_ranks(rig)
    assert frames[0] == [0, 0, 0, 1, 1, 1]
    got = in_front_of_other_views(means, depth, rig, frames, margin)
    want = _brute(means, depth, rig, frames, margin)
    assert int(want.sum()) > 20 and int((~want).sum()) > 20
    assert torch.equal(got, want)


def test_a_floater_in_another_cameras_free_space_is_found_and_the_wall_is_not():
    """Two cameras of one frame look at a wall 10 m away along +z; a third view, at another
    frame, sees the wall at 3 m (the wall moved, as a car would): it is not compared."""
    K = torch.tensor([[20.0, 0, 16], [0, 20.0, 16], [0, 0, 1]])
    poses = torch.eye(4).repeat(3, 1, 1)
    poses[1, 0, 3] = 1.0  # a second camera 1 m to the side
    cams = Cameras(K.expand(3, 3, 3)[None], poses[None], 32, 32,
                   timestamps=torch.tensor([[0.0, 0.0, 0.1]], dtype=torch.float64),
                   names=["a", "b", "a"])
    h = w = 16
    depth = torch.full((1, 3, 1, h, w), 10.0)
    depth[0, 2] = 3.0
    means = torch.zeros(1, 3 * h * w, 3)
    means[0, :, 2] = 10.0  # every Gaussian on the wall ...
    means[0, 5, :] = torch.tensor([0.5, 0.0, 5.0])  # ... but one of view a's, a floater at 5 m
    means[0, 2 * h * w + 7, :] = torch.tensor([0.5, 0.0, 5.0])  # the same place, another frame
    front = in_front_of_other_views(means, depth, cams, frame_ranks(cams), 0.0)
    assert front[0].nonzero().flatten().tolist() == [5]


def _tiny(visibility: bool) -> SplatNetConfig:
    cfg = SplatNetConfig()
    cfg.encoder = dataclasses.replace(cfg.encoder, stem_dim=8, mid_dim=8, low_dim=8, context_dim=8)
    cfg.cost_volume = dataclasses.replace(cfg.cost_volume, num_candidates=8, unet_dims=(8, 8, 8))
    cfg.head = dataclasses.replace(cfg.head, hidden_dim=8)
    cfg.visibility = VisibilityConfig(enabled=visibility, factor=0.25)
    return cfg


def test_the_option_scales_only_the_opacities_of_those_gaussians():
    torch.manual_seed(0)
    plain = SplatNet(_tiny(False)).eval()
    thin = SplatNet(_tiny(True)).eval()
    thin.load_state_dict(plain.state_dict())
    rig = surround_rig(1, 6, 2, 32, 48)  # neighbouring cameras overlap
    images = torch.rand(1, 12, 3, 32, 48, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a, b = plain(images, rig), thin(images, rig)
    for name, value in a.gaussians.fields().items():
        if name != "opacities":
            assert torch.equal(value, b.gaussians.fields()[name]), name
    front = in_front_of_other_views(a.gaussians.means, a.depth, rig, frame_ranks(rig), 0.0)
    assert 0 < int(front.sum()) < front.numel()
    want = torch.where(front, a.gaussians.opacities * 0.25, a.gaussians.opacities)
    assert torch.equal(b.gaussians.opacities, want)
    assert torch.equal(b.opacity.reshape(1, -1), want)


def test_gradients_still_reach_the_opacity_head():
    torch.manual_seed(0)
    model = SplatNet(_tiny(True)).train()
    rig = surround_rig(1, 3, 2, 32, 48)
    out = model(torch.rand(1, 6, 3, 32, 48), rig)
    out.gaussians.opacities.sum().backward()
    assert model.head.out.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("change, field", [
    ({"enabled": "yes"}, "visibility.enabled"),
    ({"margin": -0.1}, "visibility.margin"),
    ({"factor": 1.5}, "visibility.factor"),
    ({"factor": float("nan")}, "visibility.factor"),
])
def test_bad_visibility_config_names_the_field(change, field):
    with pytest.raises(ValidationError, match=field):
        SplatNetConfig(visibility=VisibilityConfig(**change))
