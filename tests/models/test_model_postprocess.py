"""Inference post-processing: pruning, voxel-hash merging of duplicates, the cap."""

from __future__ import annotations

import pytest
import torch

from splatnet import Gaussians
from splatnet.errors import ValidationError
from splatnet.models import postprocess
from splatnet.models.postprocessing import merge_duplicates, unique_rows


def spread(n: int, seed: int = 0, dynamic: bool = False) -> Gaussians:
    """n small Gaussians on a 2 m lattice (far apart relative to their 5 cm scale)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.arange(n)
    means = torch.stack([idx % 10, (idx // 10) % 10, idx // 100], -1).float() * 2.0 + 0.5
    quats = torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1)
    scales = torch.full((n, 3), 0.05) * (1 + 0.2 * torch.rand(n, 3, generator=g))
    opac = 0.1 + 0.8 * torch.rand(n, generator=g)
    sh = torch.randn(n, 4, 3, generator=g)
    kw = {}
    if dynamic:
        kw = dict(velocities=torch.randn(n, 3, generator=g), times=torch.rand(n, generator=g))
    return Gaussians(means, quats, scales, opac, sh, **kw)


def test_duplicates_from_two_views_merge():
    a = spread(50)
    # A second "view" puts a near-duplicate of each Gaussian 1 mm away.
    b = Gaussians(a.means + 0.001, a.quats, a.scales, a.opacities, a.sh)
    both = Gaussians.cat([a, b])
    out = merge_duplicates(both, cell=1.0)
    assert out.num_gaussians == 50
    # Match merged Gaussians to the originals by position.
    order = torch.cdist(out.means, a.means).argmin(dim=0)
    m = out[order]
    torch.testing.assert_close(m.means, a.means + 0.0005, rtol=0, atol=1e-5)
    torch.testing.assert_close(m.opacities, 1 - (1 - a.opacities) ** 2, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(m.sh, a.sh, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(m.scales, a.scales, rtol=1e-5, atol=1e-6)
    # Same rotation, possibly the opposite quaternion sign.
    dots = (m.quats * a.quats).sum(-1).abs()
    torch.testing.assert_close(dots, torch.ones(50), rtol=0, atol=1e-5)


def test_merge_weights_by_opacity_and_keeps_separate_ones():
    g = Gaussians(torch.tensor([[0.01, 0.01, 0.01], [0.02, 0.01, 0.01], [5.0, 5.0, 5.0]]),
                  torch.tensor([[1.0, 0, 0, 0], [-1.0, 0, 0, 0], [1.0, 0, 0, 0]]),
                  torch.full((3, 3), 0.1), torch.tensor([0.2, 0.6, 0.5]),
                  torch.tensor([[[1.0, 0, 0]], [[0.0, 1, 0]], [[0.0, 0, 1]]]))
    out = merge_duplicates(g, cell=1.0)
    assert out.num_gaussians == 2
    first = int(torch.argmin(out.means[:, 0]))
    torch.testing.assert_close(out.means[first], torch.tensor([0.0175, 0.01, 0.01]))
    torch.testing.assert_close(out.sh[first, 0], torch.tensor([0.25, 0.75, 0.0]))
    assert float(out.opacities[first]) == pytest.approx(1 - 0.8 * 0.4)
    # q and −q are the same rotation: the merge must not cancel them out.
    torch.testing.assert_close(out.quats[first].abs(), torch.tensor([1.0, 0, 0, 0]))


def test_postprocess_prune_cap_and_batch():
    a = spread(300, seed=1, dynamic=True)
    b = spread(300, seed=2, dynamic=True)
    batch = Gaussians(*(torch.stack([x, y]) for x, y in zip(
        (a.means, a.quats, a.scales, a.opacities, a.sh, a.velocities, a.times),
        (b.means, b.quats, b.scales, b.opacities, b.sh, b.velocities, b.times))))
    out = postprocess(batch, min_opacity=0.5, max_gaussians=1000)
    assert len(out) == 2
    for raw, got in zip((a, b), out):
        assert got.num_gaussians == int((raw.opacities >= 0.5).sum())
        assert float(got.opacities.min()) >= 0.5
        assert got.velocities is not None
    capped = postprocess(batch, min_opacity=0.0, max_gaussians=40)
    for raw, got in zip((a, b), capped):
        assert got.num_gaussians == 40
        top = torch.topk(raw.opacities, 40).values.sort().values
        torch.testing.assert_close(got.opacities.sort().values, top)
    # Non-finite Gaussians are dropped.
    bad = Gaussians(a.means.clone(), a.quats, a.scales, a.opacities, a.sh, check=False)
    bad.means[3, 0] = float("nan")
    assert postprocess(bad, min_opacity=0.0, merge=False)[0].num_gaussians == 299
    with pytest.raises(ValidationError):
        postprocess(a, max_gaussians=0)


@pytest.mark.parametrize("span", [3, 40_000, 2**40])
def test_unique_rows_matches_torch_unique(span):
    # Small spans take the packed 1-D path, 2**40 per column overflows 63 bits and falls back.
    g = torch.Generator().manual_seed(span % 1000)
    keys = torch.randint(-span, span, (2000, 4), generator=g)
    keys[1000:] = keys[:1000]  # every row at least twice
    keys[:, 0] = torch.randint(-5, 3, (2000,), generator=g)  # a scale level, like voxel_keys
    keys[1000:, 0] = keys[:1000, 0]
    want, want_inv = torch.unique(keys, dim=0, return_inverse=True)
    m, inverse = unique_rows(keys)
    assert m == want.shape[0] <= 1000
    assert torch.equal(inverse, want_inv)
    m, inverse = unique_rows(keys[:0])
    assert m == 0 and inverse.shape == (0,)
