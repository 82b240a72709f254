"""Per-camera affine colour compensation (``model.colour_affine``): identity at init is the plain
model bit for bit; a known per-camera gain and bias are recovered by fitting through the loss."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import random_gaussians, simple_cameras

import splatnet
from splatnet.errors import ValidationError
from splatnet.losses import apply_colour, render_and_compare
from splatnet.models import SplatNet, SplatNetConfig
from splatnet.models.colour import CameraColour, ColourAffine
from splatnet.models.config import ColourAffineConfig
from splatnet.train.config import LossConfig, StageConfig
from splatnet.train.data import SplatBatch
from splatnet.train.task import SplatTask
from tests.models.test_model import surround_rig


def _tiny(colour: bool) -> SplatNetConfig:
    cfg = SplatNetConfig()
    cfg.encoder = dataclasses.replace(cfg.encoder, stem_dim=8, mid_dim=8, low_dim=8, context_dim=8)
    cfg.cost_volume = dataclasses.replace(cfg.cost_volume, num_candidates=8, unet_dims=(8, 8, 8))
    cfg.head = dataclasses.replace(cfg.head, hidden_dim=8)
    cfg.colour_affine = ColourAffineConfig(enabled=colour)
    return cfg


def _pair() -> tuple[SplatNet, SplatNet]:
    torch.manual_seed(0)
    plain = SplatNet(_tiny(False))
    torch.manual_seed(1)
    with_colour = SplatNet(_tiny(True))
    missing, unexpected = with_colour.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("colour_affine.") for k in missing)
    return plain, with_colour


def test_identity_affine_is_the_plain_model_bit_for_bit():
    plain, with_colour = _pair()
    rig = surround_rig(1, 3, 2, 32, 48)
    torch.manual_seed(2)
    images = torch.rand(1, 6, 3, 32, 48)
    targets = torch.rand(1, 6, 3, 32, 48)
    plain.eval()
    with_colour.eval()
    with torch.no_grad():
        a, b = plain(images, rig), with_colour(images, rig)
    assert a.colour is None
    assert b.colour.names == ["cam0", "cam1", "cam2"]
    assert torch.equal(b.colour.matrices, torch.eye(3, 4).expand(1, 3, 3, 4))
    for name, value in a.gaussians.fields().items():
        assert torch.equal(value, b.gaussians.fields()[name]), name
    # The loss the trainer computes (renders through the matrices) is the plain one exactly.
    batch = SplatBatch(context_images=images, context_cameras=rig, target_images=targets,
                       target_cameras=rig, context_lidar=None, context_depths=None,
                       target_depths=None, target_sky=None, context_sky=None, target_valid=None)
    task = SplatTask(LossConfig(context_weight=0.5, depth_weight=0.0))
    stage = StageConfig(until_step=1, size=(32, 48))
    with torch.no_grad():
        la, ma = task.loss(plain, batch, 0, stage)
        lb, mb = task.loss(with_colour, batch, 0, stage)
    assert torch.equal(la, lb)
    assert torch.equal(ma["psnr"], mb["psnr"])


def test_apply_colour_is_m_rgb_plus_b_and_checks_shapes():
    torch.manual_seed(3)
    rgb = torch.rand(2, 3, 3, 4, 5)
    mats = torch.randn(2, 3, 3, 4)
    out = apply_colour(rgb, mats)
    # independent: per pixel, a 3x3 matrix times the colour vector plus the bias
    pix = rgb.permute(0, 1, 3, 4, 2)[..., None]  # [B, C, H, W, 3, 1]
    ref = (mats[:, :, None, None, :, :3] @ pix)[..., 0] + mats[:, :, None, None, :, 3]
    assert torch.allclose(out, ref.permute(0, 1, 4, 2, 3), atol=1e-6)
    with pytest.raises(ValidationError, match="do not fit"):
        apply_colour(rgb, mats[:, :2])


def test_novel_camera_gets_the_identity():
    mats = torch.randn(1, 2, 3, 4)
    colour = ColourAffine(["front", "left"], mats)
    cams = simple_cameras(3)
    cams = splatnet.Cameras(cams.K[None], cams.cam_to_world[None], cams.width, cams.height,
                            names=["left", "novel", "front"])
    got = colour.for_cameras(cams)
    assert torch.equal(got[0, 0], mats[0, 1])
    assert torch.equal(got[0, 1], torch.eye(3, 4))
    assert torch.equal(got[0, 2], mats[0, 0])


def test_known_gain_and_bias_are_recovered_by_fitting():
    """Three cameras see one fixed scene; each camera's images are the scene's render under a
    configured per-channel gain and bias. Fitting only the colour module through the training
    loss's render-and-compare must recover those factors (the scene's colours are fixed, so the
    affine is identifiable)."""
    gains = torch.tensor([[1.0, 1.0, 1.0], [0.7, 0.8, 0.9], [1.25, 1.1, 0.85]])
    biases = torch.tensor([[0.0, 0.0, 0.0], [0.05, -0.03, 0.02], [-0.04, 0.06, 0.0]])
    g = random_gaussians(400, sh_degree=0, seed=5)
    dc = (torch.rand(400, 1, 3, generator=torch.Generator().manual_seed(6)) - 0.5) * 0.9 / 0.28209479
    g = splatnet.Gaussians(g.means * 0.5, g.quats, g.scales * 1.5 + 0.2,
                           torch.full_like(g.opacities, 0.95), dc)  # colours 0.05-0.95
    base = simple_cameras(3, width=48, height=32, radius=6.0)
    cams = splatnet.Cameras(base.K[None], base.cam_to_world[None], base.width, base.height,
                            names=["c0", "c1", "c2"])
    gb = splatnet.Gaussians(**{k: v[None] for k, v in g.fields().items()})
    with torch.no_grad():
        scene = splatnet.render(gb, cams, background=torch.tensor([0.3, 0.4, 0.5])).rgb
    scene = scene.movedim(-1, -3)  # [1, 3, 3, H, W]
    observed = scene * gains[None, :, :, None, None] + biases[None, :, :, None, None]
    assert scene.std() > 0.1  # colours vary: the affine is identifiable

    torch.manual_seed(0)
    module = CameraColour(context_dim=4, hidden_dim=16)
    context = torch.zeros(1, 3, 4, 2, 2)
    opt = torch.optim.Adam(module.parameters(), lr=2e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 500, eta_min=2e-4)
    for _ in range(500):
        colour = module(context, observed, cams)
        loss = render_and_compare(gb, cams, observed, background=torch.tensor([0.3, 0.4, 0.5]),
                                  ssim_weight=0.0, colour=colour.for_cameras(cams))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        mats = module(context, observed, cams).matrices[0]  # [3, 3, 4]
    # The recovered map, compared where it acts: on the corners of the scene's colour cube
    # (0.05-0.95 per channel). A gain and a bias trade off against each other a little when the
    # colours are not spread over [0, 1], so the map is what is identified, not each number.
    corners = torch.cartesian_prod(*[torch.tensor([0.05, 0.95])] * 3)  # [8, 3]
    for k in range(3):
        got = corners @ mats[k, :, :3].T + mats[k, :, 3]
        want = corners * gains[k] + biases[k]
        assert (got - want).abs().max() < 0.03, (k, mats[k])
        off = mats[k, :, :3] - torch.diag(torch.diagonal(mats[k, :, :3]))
        assert off.abs().max() < 0.03, (k, mats[k])
        assert torch.allclose(torch.diagonal(mats[k, :, :3]), gains[k], atol=0.05), (k, mats[k])


def test_fit_colour_recovers_each_cameras_gain_and_offset():
    """Four views of two cameras (two frames each): each camera's images are the renders under
    its own per-channel gain and offset, except a block of junk pixels marked invalid. The fit
    gives those numbers back; a channel whose render is constant keeps the identity; with noise
    it agrees with numpy's least-squares line through the same pixels."""
    import numpy as np

    from splatnet.models.colour import fit_colour

    gen = torch.Generator().manual_seed(7)
    renders = torch.rand(4, 16, 20, 3, generator=gen) * 0.9 + 0.05
    renders[1, ..., 2] = 0.4  # camera "b", blue: constant in one of its views only
    names = ["a", "b", "a", "b"]
    gain = {"a": torch.tensor([0.8, 1.1, 0.95]), "b": torch.tensor([1.2, 0.9, 1.05])}
    offset = {"a": torch.tensor([0.03, -0.02, 0.0]), "b": torch.tensor([-0.05, 0.04, 0.01])}
    images = torch.stack([renders[i] * gain[n] + offset[n] for i, n in enumerate(names)])
    valid = torch.ones(4, 16, 20, dtype=torch.bool)
    valid[:, :4, :5] = False
    images[:, :4, :5] = torch.rand(4, 4, 5, 3, generator=gen)  # junk where invalid
    fit = fit_colour(renders, images, names, valid)
    assert fit.names == ["a", "b"] and tuple(fit.matrices.shape) == (1, 2, 3, 4)
    for k, n in enumerate(["a", "b"]):
        m = fit.matrices[0, k]
        assert torch.allclose(torch.diagonal(m[:, :3]), gain[n], atol=1e-5)
        assert torch.allclose(m[:, 3], offset[n], atol=1e-5)
        assert torch.count_nonzero(m[:, :3] - torch.diag(torch.diagonal(m[:, :3]))) == 0

    flat = torch.full_like(renders, 0.5)
    assert torch.equal(fit_colour(flat, images, names).matrices[0, 0], torch.eye(3, 4))
    assert torch.equal(fit_colour(renders, images, names, torch.zeros_like(valid)).matrices,
                       torch.eye(3, 4).expand(1, 2, 3, 4))

    noisy = images + 0.05 * torch.randn(images.shape, generator=gen)
    fit = fit_colour(renders, noisy, names, valid)
    for k, n in enumerate(["a", "b"]):
        rows = [i for i, m in enumerate(names) if m == n]
        for ch in range(3):
            x = renders[rows][..., ch][valid[rows]].double().numpy()
            y = noisy[rows][..., ch][valid[rows]].double().numpy()
            slope, intercept = np.polyfit(x, y, 1)
            assert float(fit.matrices[0, k, ch, ch]) == pytest.approx(slope, abs=1e-5)
            assert float(fit.matrices[0, k, ch, 3]) == pytest.approx(intercept, abs=1e-5)
    with pytest.raises(ValidationError, match="names"):
        fit_colour(renders, images, names[:3])

    # With a prior towards the identity: numpy's least squares of the same pixels with two rows
    # more, sqrt(prior · n) · (g − 1) and sqrt(prior · n) · b.
    fit = fit_colour(renders, noisy, names, valid, prior=0.05)
    for k, n in enumerate(["a", "b"]):
        rows = [i for i, m in enumerate(names) if m == n]
        for ch in range(3):
            x = renders[rows][..., ch][valid[rows]].double().numpy()
            y = noisy[rows][..., ch][valid[rows]].double().numpy()
            r = (0.05 * x.size) ** 0.5
            a = np.concatenate([np.stack([x, np.ones_like(x)], 1), [[r, 0.0], [0.0, r]]])
            (gain_np, offset_np), *_ = np.linalg.lstsq(a, np.concatenate([y, [r, 0.0]]), rcond=None)
            assert float(fit.matrices[0, k, ch, ch]) == pytest.approx(gain_np, abs=1e-5)
            assert float(fit.matrices[0, k, ch, 3]) == pytest.approx(offset_np, abs=1e-5)
    assert torch.equal(fit_colour(renders, renders, names, prior=0.05).matrices.isclose(
        torch.eye(3, 4).expand(1, 2, 3, 4), atol=1e-6).all(), torch.tensor(True))
    for bad in (-1.0, float("nan"), True):
        with pytest.raises(ValidationError, match="prior"):
            fit_colour(renders, images, names, prior=bad)
    with pytest.raises(ValidationError, match="renders"):
        fit_colour(renders, images[:3], names)


@pytest.mark.parametrize("change, field", [
    ({"enabled": "yes"}, "colour_fit.enabled"),
    ({"prior": -0.1}, "colour_fit.prior"),
    ({"prior": float("inf")}, "colour_fit.prior"),
])
def test_bad_colour_fit_config_names_the_field(change, field):
    from splatnet.models.config import ColourFitConfig

    with pytest.raises(ValidationError, match=field):
        SplatNetConfig(colour_fit=ColourFitConfig(**change))
