"""The sky model: its colour against the plain formula (an MLP of [direction, Fourier features,
scene latent]), and rendering only chosen pixels."""

from __future__ import annotations

import math

import pytest
import torch

from splatnet import Cameras
from splatnet.errors import ValidationError
from splatnet.models.sky import SkyBackground, SkyModel


def _reference_colour(model: SkyModel, latent: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """sigmoid(MLP([d̂, sin(2^k π d̂), cos(2^k π d̂), latent])), the latent copied to every ray."""
    d = dirs / dirs.norm(dim=-1, keepdim=True)
    feats = [d]
    ang = torch.cat([d * (2.0 ** k) * math.pi for k in range(model.num_frequencies)], dim=-1)
    feats += [ang.sin(), ang.cos()]
    lat = latent[:, None, :].expand(-1, d.shape[1], -1)
    return torch.sigmoid(model.mlp(torch.cat(feats + [lat], dim=-1)))


def _model() -> tuple[SkyModel, torch.Tensor]:
    torch.manual_seed(0)
    model = SkyModel(8, hidden_dim=16, latent_dim=5, num_frequencies=3)
    return model, torch.randn(2, 5)


def test_colour_is_the_mlp_of_direction_features_and_latent():
    model, latent = _model()
    dirs = torch.randn(2, 300, 3)
    torch.testing.assert_close(model.colour(latent, dirs), _reference_colour(model, latent, dirs),
                               atol=1e-6, rtol=0)
    # Gradients reach the latent and the weights the same way.
    lat = latent.clone().requires_grad_(True)
    model.colour(lat, dirs).sum().backward()
    ours, model.mlp[0].weight.grad = model.mlp[0].weight.grad.clone(), None
    lat2 = latent.clone().requires_grad_(True)
    _reference_colour(model, lat2, dirs).sum().backward()
    torch.testing.assert_close(lat.grad, lat2.grad, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours, model.mlp[0].weight.grad, atol=1e-4, rtol=0)


def test_render_only_where_asked():
    model, latent = _model()
    bg = SkyBackground(model, latent)
    K = torch.tensor([[20.0, 0, 12], [0, 20, 8], [0, 0, 1]])
    cams = Cameras.look_at([[0.0, 0, 0], [1.0, 2, 0], [0, 0, 1]], [[5.0, 0, 0], [1.0, 8, 0], [0, 5, 1]],
                           K, 24, 16)
    batched = Cameras(torch.stack([cams.K, cams.K]), torch.stack([cams.cam_to_world] * 2), 24, 16)
    with torch.no_grad():
        full = bg.render(batched)
        where = torch.rand(full.shape[:-1], generator=torch.Generator().manual_seed(3)) < 0.4
        part = bg.render(batched, where=where)
    torch.testing.assert_close(part[where], full[where], atol=1e-6, rtol=0)
    assert torch.equal(part[~where], torch.zeros_like(part[~where]))
    with pytest.raises(ValidationError, match="where"):
        bg.render(batched, where=where[0])
