"""Training samples from clips: determinism, view roles, LiDAR depth projection, batching."""

from __future__ import annotations

import math

import pytest
import torch

from splatnet.cameras import sparse_depth as project_depth
from splatnet.errors import ValidationError
from splatnet.train import StageConfig
from splatnet.train.data import ClipSource, collate, synthetic_clips


@pytest.fixture(scope="module")
def synth_clip(tmp_path_factory):
    pytest.importorskip("open3d")
    root = tmp_path_factory.mktemp("synth")
    return synthetic_clips([5], cameras=3, frames=3, size=(96, 160), targets=2, cache_dir=root)[0]


def test_project_depth_matches_hand_computation():
    K = torch.tensor([[10.0, 0, 4], [0, 10, 3], [0, 0, 1]])
    w2c = torch.eye(4)
    w2c[:3, 3] = torch.tensor([0.0, 0.0, 1.0])  # camera 1 m behind the world origin
    pts = torch.tensor([
        [0.0, 0.0, 1.0],    # z=2 → u = 4, v = 3 → pixel (4, 3)
        [0.0, 0.0, 3.0],    # same pixel, farther: the z-buffer keeps 2
        [0.35, -0.1, 1.0],  # z=2 → u = 5.75, v = 2.5 → pixel (5, 2)
        [0.0, 0.0, -0.8],   # z=0.2, behind the near plane
        [5.0, 0.0, 1.0],    # u = 29, outside the 8-pixel-wide image
    ])
    d = project_depth(pts, K, w2c, (6, 8))
    want = torch.zeros(6, 8)
    want[3, 4] = 2.0
    want[2, 5] = 2.0
    assert torch.equal(d, want)


def test_plans_are_deterministic_and_respect_roles(synth_clip):
    src = ClipSource([synth_clip], context_frames=2, target_views=3, seed=1)
    assert src.plan(7) == ClipSource([synth_clip], context_frames=2, target_views=3,
                                      seed=1).plan(7)
    assert any(src.plan(i) != ClipSource([synth_clip], context_frames=2, target_views=3,
                                         seed=2).plan(i) for i in range(5))
    clip = src.clips[0]
    for i in range(20):
        _, frames, targets = src.plan(i)
        assert len(frames) == 2 and frames[1] == frames[0] + 1
        for f, cam in targets:
            if cam in clip.target_camera_names:
                assert f in frames  # held-out cameras at context times
            else:
                assert f not in frames  # rig cameras at other times


def test_sample_shapes_and_lidar_depth_agree_with_ground_truth(synth_clip):
    src = ClipSource([synth_clip], context_frames=2, target_views=2, seed=0)
    b = src.get(3, StageConfig(size=(32, 48)))
    assert b.context_images.shape == (1, 6, 3, 32, 48)  # 3 rig cameras × 2 frames
    assert b.context_cameras.batch_shape == (1,) and b.context_cameras.num_cameras == 6
    assert b.target_images.shape == (1, 2, 3, 32, 48)
    assert b.target_cameras.width == 48 and b.target_cameras.height == 32
    assert b.context_depths.shape == (1, 6, 1, 32, 48)
    assert b.target_sky.shape == (1, 2, 1, 32, 48)
    assert 0 <= float(b.context_images.min()) and float(b.context_images.max()) <= 1
    # projected LiDAR lands on the surfaces the generator's own depth maps show (compared at the
    # clip's own size: resizing the depth maps would move their samples within a pixel)
    _, frames, _ = src.plan(3)
    full = src.get(3, StageConfig(size=(96, 160)))
    gt = src.clips[0].views(frames=frames).depths.permute(0, 3, 1, 2)[None]
    lid = full.context_depths
    hit = (lid > 0) & (gt > 0)
    assert int(hit.sum()) > 50
    rel = ((lid - gt).abs() / gt)[hit]
    assert float(rel.median()) < 0.008, float(rel.median())  # ~0.45 %: sub-pixel sampling
    # (almost) no LiDAR on sky pixels of the target views
    tl = b.target_depths[b.target_sky == 1]
    assert float((tl > 0).float().mean()) < 0.05  # boundary pixels of the resized mask


def test_collate_stacks_samples(synth_clip):
    src = ClipSource([synth_clip], context_frames=1, target_views=1, seed=0)
    st = StageConfig(size=(16, 24))
    a, b = src.get(0, st), src.get(1, st)
    ab = collate([a, b])
    assert ab.batch_size == 2 and ab.context_cameras.batch_shape == (2,)
    assert torch.equal(ab.target_images[1], b.target_images[0])
    assert torch.equal(ab.context_cameras.K[0], a.context_cameras.K[0])


def test_synthetic_clips_are_cached(tmp_path, synth_clip):
    root = synth_clip.parent
    before = (synth_clip / "clip.json").stat().st_mtime_ns
    again = synthetic_clips([5], cameras=3, frames=3, size=(96, 160), targets=2, cache_dir=root)
    assert again == [synth_clip]
    assert (synth_clip / "clip.json").stat().st_mtime_ns == before
    assert math.isfinite(before)


def test_sources_are_mixed_by_their_weights(tmp_path):
    """Samples come from each source in proportion to its weight (split evenly over its clips),
    measured over many sample indices; no weights: every clip in turn (as before)."""
    from collections import Counter

    from splatnet.clip.synth import generate
    from splatnet.train.data import source_weights

    clips = []
    for seed in range(3):
        generate(tmp_path / f"c{seed}", seed, cameras=1, frames=2, size=(16, 24), targets=0)
        clips.append(tmp_path / f"c{seed}")
    groups = [("real", clips[:1], 0.75), ("synthetic", clips[1:], 0.25)]
    w = source_weights(groups)
    assert w == [0.75, 0.125, 0.125]
    src = ClipSource(clips, context_frames=1, target_views=1, seed=3, weights=w)
    n = 4000
    counts = Counter(src.plan(i)[0] for i in range(n))
    for ci, want in enumerate(w):
        assert abs(counts[ci] / n - want) < 0.03, (ci, counts[ci] / n, want)
    plain = ClipSource(clips, context_frames=1, target_views=1, seed=3)
    assert [plain.plan(i)[0] for i in range(6)] == [0, 1, 2, 0, 1, 2]
    assert source_weights([("a", clips[:1], None), ("b", clips[1:], None)]) is None
    with pytest.raises(ValidationError, match="a need a weight"):
        source_weights([("a", clips[:1], None), ("b", clips[1:], 1.0)])


def test_synthetic_realism_is_part_of_the_cache_key(tmp_path):
    from splatnet.clip import Clip
    from splatnet.train.data import synthetic_clips

    plain = synthetic_clips([5], 2, 1, (16, 24), 0, tmp_path)
    real = synthetic_clips([5], 2, 1, (16, 24), 0, tmp_path, realism="real")
    assert plain != real and real[0].name.endswith("_real")
    meta = Clip.load(real[0]).metadata
    assert "realism" in meta and "realism" not in Clip.load(plain[0]).metadata


def test_synthetic_clips_in_parallel_workers_equal_one_process(tmp_path):
    """Two worker processes render the same clips (bytes of every image) as one process does."""
    from splatnet.train.data import synthetic_clips

    one = synthetic_clips([7, 8], 2, 1, (16, 24), 0, tmp_path / "one")
    two = synthetic_clips([7, 8], 2, 1, (16, 24), 0, tmp_path / "two", workers=2)
    assert [p.name for p in one] == [p.name for p in two]
    for a, b in zip(one, two):
        files = sorted(f.relative_to(a) for f in a.rglob("*.png"))
        assert files and files == sorted(f.relative_to(b) for f in b.rglob("*.png"))
        assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


def test_camera_masks_reach_the_batch_as_context_validity(synth_clip, tmp_path):
    """A camera mask (the ego's hood) is in ``context_valid`` of every view of that camera, and
    collating a masked with an unmasked sample fills the latter with True."""
    import json
    import shutil

    import numpy as np
    from PIL import Image

    dst = tmp_path / "masked"
    shutil.copytree(synth_clip, dst)
    m = json.loads((dst / "clip.json").read_text())
    cam = m["cameras"][0]
    mask = np.full((cam["height"], cam["width"]), 255, np.uint8)
    mask[cam["height"] * 3 // 4:] = 0
    (dst / "hood.png").parent.mkdir(exist_ok=True)
    Image.fromarray(mask).save(dst / "hood.png")
    cam["mask"] = "hood.png"
    (dst / "clip.json").write_text(json.dumps(m))
    st = StageConfig(size=(32, 48))
    b = ClipSource([dst], context_frames=2, target_views=1, seed=0).get(0, st)
    names = [n for n in b.context_cameras.names]
    assert b.context_valid.shape == (1, 6, 1, 32, 48) and b.context_valid.dtype == torch.bool
    for v, name in enumerate(names):
        want = torch.ones(32, 48, dtype=torch.bool)
        if name == cam["name"]:
            want[24:] = False
        assert torch.equal(b.context_valid[0, v, 0], want), name
    plain = ClipSource([synth_clip], context_frames=2, target_views=1, seed=0).get(0, st)
    assert plain.context_valid is None
    both = collate([b, plain])
    assert torch.equal(both.context_valid[0], b.context_valid[0]) and bool(both.context_valid[1].all())
