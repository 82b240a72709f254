"""Issue 16's training options: several input sizes (``data.sizes``) and per-camera colour
compensation (``model.colour_affine``) fine-tuned from weights made without it."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest
import torch

from splatnet.config_io import from_dict
from splatnet.errors import ValidationError
from splatnet.io import checkpoint

pytest.importorskip("open3d")  # the synthetic generator
train = pytest.importorskip("splatnet.train")
from splatnet.train.config import DataConfig, StageConfig, size_index  # noqa: E402
from splatnet.train.loop import _init_weights  # noqa: E402
from splatnet.train.task import SplatTask  # noqa: E402

SMALL_MODEL = {
    "encoder": {"stem_dim": 8, "mid_dim": 8, "low_dim": 8, "matching_dim": 8, "context_dim": 8},
    "cost_volume": {"num_candidates": 8, "unet_dims": [8, 8, 8], "lidar_dropout": 0.0},
    "head": {"hidden_dim": 8},
    "sky": {"hidden_dim": 8},
}
SIZES = [[16, 24], [24, 32], [32, 40]]


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    from splatnet.train.data import synthetic_clips

    cache = tmp_path_factory.mktemp("synth")
    return synthetic_clips([1], cameras=2, frames=2, size=(48, 80), targets=1, cache_dir=cache)[0]


def test_sizes_are_drawn_uniformly_and_deterministically():
    data = DataConfig(size=(64, 112), sizes=[tuple(s) for s in SIZES], seed=7,
                      curriculum=[StageConfig(until_step=10**6, size=(64, 112),
                                                depth_weight=0.3)])
    drawn = [data.stage_at(step) for step in range(3000)]
    counts = collections.Counter(s.size for s in drawn)
    assert set(counts) == {tuple(s) for s in SIZES}  # only the configured sizes
    for n in counts.values():  # uniform: 1000 each, binomial sd ~26
        assert abs(n - 1000) < 120, counts
    assert all(s.depth_weight == 0.3 for s in drawn)  # the stage's other settings are kept
    again = DataConfig(size=(64, 112), sizes=[tuple(s) for s in SIZES], seed=7)
    assert [again.stage_at(i).size for i in range(200)] == [s.size for s in drawn[:200]]
    other = DataConfig(size=(64, 112), sizes=[tuple(s) for s in SIZES], seed=8)
    assert [other.stage_at(i).size for i in range(200)] != [s.size for s in drawn[:200]]
    # without sizes: the stage's size, as before
    assert DataConfig(size=(64, 112)).stage_at(5).size == (64, 112)


def test_bad_sizes_are_refused():
    with pytest.raises(ValidationError, match=r"data.sizes\[1\]"):
        from_dict(train.TrainConfig, {"data": {"sizes": [[16, 24], [0, 8]]}})
    with pytest.raises(ValidationError, match=r"data.sizes\[0\].*stride"):
        from_dict(train.TrainConfig, {"data": {"sizes": [[15, 24]]}})


class _Recording(SplatTask):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[tuple[int, tuple[int, int]]] = []

    def loss(self, model, batch, step, stage):
        self.seen.append((step, tuple(batch.context_images.shape[-2:])))
        return super().loss(model, batch, step, stage)


def test_a_step_runs_at_each_size(tmp_path, clip_dir):
    # enough steps that every size comes up (the draw is a pure function of seed and step)
    steps = next(n for n in range(3, 60)
                 if len({size_index(0, s, len(SIZES)) for s in range(n)}) == len(SIZES))
    cfg = from_dict(train.TrainConfig, {
        "data": {"clips": [str(clip_dir)], "sizes": SIZES, "target_views": 1},
        "schedule": {"steps": steps, "warmup_steps": 0}, "model": SMALL_MODEL,
        "loss": {"ssim_weight": 0.0},
        "log": {"dir": str(tmp_path / "r"), "progress": False, "every": 1}})
    task = _Recording(cfg.loss)
    train.run(cfg, task=task)
    assert [s for s, _ in task.seen] == list(range(steps))
    expect = [tuple(SIZES[size_index(0, s, len(SIZES))]) for s in range(steps)]
    assert [hw for _, hw in task.seen] == expect  # the network saw the drawn size
    assert {hw for _, hw in task.seen} == {tuple(s) for s in SIZES}


def test_colour_affine_fine_tunes_from_weights_without_it(tmp_path, clip_dir):
    from splatnet.models import SplatNet, SplatNetConfig

    torch.manual_seed(0)
    plain = SplatNet(SplatNetConfig.from_dict(SMALL_MODEL))
    path = checkpoint.save_model(tmp_path / "plain", plain)
    # the file is of the old layout: no colour_affine in its config at all
    sidecar = path.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    del meta["config"]["colour_affine"]
    sidecar.write_text(json.dumps(meta))
    loaded = checkpoint.load_model(path)  # an old file still loads, without the module
    assert loaded.colour_affine is None and not loaded.config.colour_affine.enabled

    model_cfg = {**SMALL_MODEL, "colour_affine": {"enabled": True}}
    cfg = from_dict(train.TrainConfig, {
        "data": {"clips": [str(clip_dir)], "size": [16, 24], "target_views": 1},
        "schedule": {"steps": 1, "warmup_steps": 0}, "model": model_cfg, "init": str(path),
        "optim": {"lr": 1e-3},
        "log": {"dir": str(tmp_path / "r"), "progress": False, "every": 1}})
    model = checkpoint.build_model(cfg.arch, cfg.model)
    _init_weights(model, cfg)
    ref = plain.state_dict()
    for k, v in model.state_dict().items():
        if k.startswith("colour_affine."):
            continue
        assert torch.equal(v, ref[k]), k
    last = model.colour_affine.mlp[-1]
    assert not last.weight.any() and not last.bias.any()  # the identity
    trained = train.run(cfg, model=model)
    assert trained.colour_affine.mlp[-1].weight.abs().sum() > 0  # the loss reached the matrices
    # without colour_affine in the config the same file fine-tunes as before
    cfg_plain = from_dict(train.TrainConfig, {"model": SMALL_MODEL, "init": str(path)})
    m2 = checkpoint.build_model(cfg_plain.arch, cfg_plain.model)
    _init_weights(m2, cfg_plain)
    assert all(torch.equal(v, ref[k]) for k, v in m2.state_dict().items())


def test_lr_scales_multiply_the_rate_of_the_named_parameters(tmp_path, clip_dir):
    """Adam's first update moves every parameter with a gradient by about its learning rate (the
    update is lr · g / (|g| + eps)): the colour module's must move 10 times as far."""
    from splatnet.models import SplatNet, SplatNetConfig

    model_cfg = {**SMALL_MODEL, "colour_affine": {"enabled": True}}
    cfg = from_dict(train.TrainConfig, {
        "data": {"clips": [str(clip_dir)], "size": [16, 24], "target_views": 1},
        "schedule": {"steps": 1, "warmup_steps": 0}, "model": model_cfg,
        "optim": {"lr": 1e-3, "weight_decay": 0.0, "grad_clip": 0.0,
                  "lr_scales": [{"prefix": "colour_affine.", "scale": 10.0}]},
        "log": {"dir": str(tmp_path / "r"), "progress": False, "every": 1}})
    torch.manual_seed(0)
    model = SplatNet(SplatNetConfig.from_dict(model_cfg))
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    train.run(cfg, model=model)
    moved = {k: float((v.detach() - before[k]).abs().max()) for k, v in model.named_parameters()}
    assert moved["colour_affine.mlp.2.bias"] == pytest.approx(1e-2, rel=0.05)
    assert moved["head.out.bias"] == pytest.approx(1e-3, rel=0.05)
    with pytest.raises(ValidationError, match=r"optim.lr_scales\[0\].scale"):
        from_dict(train.TrainConfig, {"optim": {"lr_scales": [{"prefix": "x", "scale": 0}]}})
