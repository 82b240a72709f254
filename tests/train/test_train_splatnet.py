"""Training the real SplatNet: configs load, the CLI trains / saves / resumes, and it overfits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import splatnet
from splatnet.cli import main as cli_main
from splatnet.config_io import from_dict, load_config
from splatnet.io import checkpoint

REPO = Path(__file__).resolve().parents[2]
pytest.importorskip("open3d")  # the synthetic generator
train = pytest.importorskip("splatnet.train")
if train.TrainConfig is None:  # pragma: no cover
    pytest.skip("splatnet.models is not available", allow_module_level=True)

SMALL_MODEL = {
    "encoder": {"stem_dim": 16, "mid_dim": 16, "low_dim": 32, "matching_dim": 16,
                "context_dim": 16},
    "cost_volume": {"num_candidates": 8, "unet_dims": [16, 16, 16], "lidar_dropout": 0.0},
    "head": {"hidden_dim": 16},
    "sky": {"hidden_dim": 16},
}


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    from splatnet.train.data import synthetic_clips

    cache = tmp_path_factory.mktemp("synth")
    return synthetic_clips([1], cameras=2, frames=2, size=(48, 80), targets=1, cache_dir=cache)[0]


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path):
    cfg = load_config(train.TrainConfig, path)
    assert cfg.schedule.steps > 0


def test_cli_trains_saves_and_resumes(tmp_path, clip_dir, capsys):
    from splatnet.train.data import synthetic_clips

    eval_clip = synthetic_clips([2], cameras=2, frames=2, size=(48, 80), targets=1,
                                cache_dir=clip_dir.parent)[0]
    run = tmp_path / "run"
    args = ["train", f"data.clips=[{clip_dir}]", f"eval.clips=[{eval_clip}]", "eval.every=2",
            "data.curriculum=[{until_step: 2, size: [16, 24]}, {until_step: 3, size: [24, 32]}]",
            "data.target_views=1",
            "schedule.steps=3", "schedule.warmup_steps=1", f"log.dir={run}", "log.every=1",
            "log.progress=false", "log.checkpoint_every=2", "log.keep=0", "loss.ssim_weight=0"]
    args += [f"model.{k}={json.dumps(v)}" for k, v in SMALL_MODEL.items()]
    assert cli_main([*args, "--stop-at", "2"]) == 0
    assert json.loads((run / "checkpoints" / "latest.json").read_text())["step"] == 2
    assert cli_main(["train", "--resume", str(run)]) == 0  # the stored config, to the end
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train_rows] == [1, 2, 3]
    assert [r["size"] for r in train_rows] == [[16, 24], [16, 24], [24, 32]]  # the curriculum
    assert all(r["loss"] > 0 and r["depth_l1"] >= 0 for r in train_rows)
    evals = [r for r in rows if "eval_psnr" in r]
    assert [r["step"] for r in evals] == [2, 3]  # every 2 steps and at the end
    assert all(0 < r["eval_psnr"] < 60 and 0 < r["eval_ssim"] <= 1 for r in evals)
    model = splatnet.load_model(run)
    assert type(model).__name__ == "SplatNet" and not model.training
    # a bad override is one line on stderr and a non-zero exit
    assert cli_main(["train", f"log.dir={run}", "optim.lrr=1"]) == 1
    assert "unknown config key 'optim.lrr'" in capsys.readouterr().err


def test_resume_into_another_model_config_is_refused(tmp_path, clip_dir):
    cfg = from_dict(train.TrainConfig, {
        "data": {"clips": [str(clip_dir)], "size": [16, 24], "target_views": 1},
        "schedule": {"steps": 1, "warmup_steps": 0}, "model": SMALL_MODEL,
        "log": {"dir": str(tmp_path / "r"), "progress": False}})
    train.run(cfg)
    other = train.resolve_config(train.TrainConfig, None, ["model.head.hidden_dim=24"],
                                 str(tmp_path / "r"))
    with pytest.raises(splatnet.ValidationError, match="head.hidden_dim"):
        train.run(other, resume=str(tmp_path / "r"))


def test_init_starts_from_given_weights_with_a_fresh_optimiser(tmp_path, clip_dir):
    base = {"data": {"clips": [str(clip_dir)], "size": [16, 24], "target_views": 1},
            "schedule": {"steps": 1, "warmup_steps": 0}, "model": SMALL_MODEL,
            "log": {"dir": str(tmp_path / "a"), "progress": False}}
    first = train.run(from_dict(train.TrainConfig, base))
    src = {k: v.detach().clone() for k, v in first.state_dict().items()}
    # A different seed would give other initial weights; init must replace them all, and the
    # zero-learning-rate step must leave them untouched (a fresh optimiser, step 0).
    cfg = from_dict(train.TrainConfig, {
        **base, "seed": 7, "init": str(tmp_path / "a"), "optim": {"lr": 0.0, "min_lr": 0.0},
        "log": {"dir": str(tmp_path / "b"), "progress": False}})
    tuned = train.run(cfg)
    for k, v in tuned.state_dict().items():
        assert torch.equal(v, src[k]), k
    trainer = json.loads((tmp_path / "b" / "checkpoints" / "latest.json").read_text())
    assert trainer["step"] == 1
    other = from_dict(train.TrainConfig, {
        **base, "init": str(tmp_path / "a"), "model": {**SMALL_MODEL, "head": {"hidden_dim": 24}},
        "log": {"dir": str(tmp_path / "c"), "progress": False}})
    with pytest.raises(splatnet.ValidationError, match="head.hidden_dim"):
        train.run(other)
    with pytest.raises(FileNotFoundError, match="nope"):
        train.run(from_dict(train.TrainConfig, {**base, "init": str(tmp_path / "nope")}))
    # Fields no weight depends on may differ: fine-tuning at another Gaussian stride.
    finer = from_dict(train.TrainConfig, {
        **base, "init": str(tmp_path / "a"), "optim": {"lr": 0.0, "min_lr": 0.0},
        "model": {**SMALL_MODEL, "head": {**SMALL_MODEL.get("head", {}), "stride": 1},
                  "postprocess": {"max_gaussians": 1000}},
        "log": {"dir": str(tmp_path / "d"), "progress": False}})
    tuned = train.run(finer)
    assert tuned.stride == 1
    for k, v in tuned.state_dict().items():
        assert torch.equal(v, src[k]), k


def test_overfits_one_small_clip(tmp_path, clip_dir):
    """Target-view PSNR on one clip rises by ≥ 3 dB in 25 CPU steps (fixed seeds)."""
    from splatnet.train.data import ClipSource, collate
    from splatnet.train.task import SplatTask

    torch.manual_seed(0)
    cfg = from_dict(train.TrainConfig, {
        "data": {"clips": [str(clip_dir)], "size": [32, 48], "context_frames": 2,
                 "target_views": 1},
        "schedule": {"steps": 25, "warmup_steps": 2},
        "optim": {"lr": 3e-3, "grad_clip": 1.0},
        "loss": {"context_weight": 0.0},
        "model": SMALL_MODEL,
        "log": {"dir": str(tmp_path / "of"), "progress": False, "checkpoint_every": 0}})
    model = checkpoint.build_model("splatnet", cfg.model)
    data = ClipSource(cfg.data.clips, context_frames=2, target_views=1, seed=0)
    task = SplatTask(cfg.loss)
    stage = cfg.data.stage_at(0)
    held = collate([data.get(i, stage) for i in range(2)])  # both target views of the clip

    def target_psnr() -> float:
        model.eval()
        with torch.no_grad():
            _, m = task.loss(model, held, 0, stage)
        model.train()
        return m["psnr"]

    before = target_psnr()
    train.Trainer(cfg, model, data, task).fit()
    after = target_psnr()
    print(f"overfit: {before:.2f} -> {after:.2f} dB")
    assert after > before + 3.0, (before, after)


def test_bf16_network_output_is_rendered_in_float32(clip_dir):
    """What CUDA training does (bf16 network output, float32 rendering and losses): the task casts
    a bf16 output back before rendering (the output is made bf16 by hand here)."""
    import dataclasses

    from splatnet.train.task import SplatTask, _float32

    cfg, model, stage, batch = _small_model_and_batch(clip_dir)
    out = model(batch.context_images, batch.context_cameras, lidar=batch.context_lidar)
    bf = torch.bfloat16
    half = dataclasses.replace(
        out, gaussians=out.gaussians.to(bf), depth=out.depth.to(bf),
        coarse_depth=out.coarse_depth.to(bf),
        sky=type(out.sky)(out.sky.model, out.sky.latent.to(bf)))
    task = SplatTask(cfg.loss)
    with torch.autocast("cpu", dtype=bf, enabled=False):
        loss, m = task._objective(_float32(half), batch, stage, cfg.model.near)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    ref, _ = task._objective(out, batch, stage, cfg.model.near)
    a, b = float(loss.detach()), float(ref.detach())
    assert abs(a - b) < 0.05 * b  # bf16 rounding of the inputs only
    loss.backward()
    assert any(p.grad is not None for p in model.parameters())


@pytest.mark.slow
def test_torchrun_real_model_matches_one_process(tmp_path, clip_dir):
    """``torchrun -m splatnet.train`` with 2 gloo ranks == 1 process, same global batch."""
    import os
    import socket
    import subprocess
    import sys

    common = [f"data.clips=[{clip_dir}]", "data.size=[16, 24]", "data.target_views=1",
              "data.batch_size=2", "schedule.steps=2", "schedule.warmup_steps=1",
              "log.progress=false", "device=cpu", "loss.ssim_weight=0"]
    common += [f"model.{k}={json.dumps(v)}" for k, v in SMALL_MODEL.items()]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    res = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_addr", "127.0.0.1", "--master_port", str(port), "-m", "splatnet.train",
         *common, f"log.dir={tmp_path / 'ddp'}"],
        env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert cli_main(["train", *common, f"log.dir={tmp_path / 'one'}"]) == 0
    a = checkpoint.load_checkpoint(tmp_path / "ddp" / "checkpoints")
    b = checkpoint.load_checkpoint(tmp_path / "one" / "checkpoints")
    assert a.trainer["world_size"] == 2 and b.trainer["world_size"] == 1
    for k, v in b.model_state.items():
        torch.testing.assert_close(a.model_state[k], v, rtol=1e-4, atol=1e-5, msg=k)


def test_training_loss_under_bf16_autocast(clip_dir):
    """The whole step as CUDA training runs it (network under bf16 autocast), on the CPU."""
    from splatnet.train.task import SplatTask

    cfg, model, stage, batch = _small_model_and_batch(clip_dir)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, m = SplatTask(cfg.loss).loss(model, batch, 0, stage)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all()
               for p in model.parameters() if p.requires_grad)
    assert m["psnr"] > 0


def _small_model_and_batch(clip_dir: Path):
    """(config, SMALL_MODEL network seeded 0, a 16x24 stage, one batch of ``clip_dir``)."""
    from splatnet.train.data import ClipSource

    cfg = from_dict(train.TrainConfig, {"model": SMALL_MODEL})
    torch.manual_seed(0)
    model = checkpoint.build_model("splatnet", cfg.model)
    data = ClipSource([clip_dir], context_frames=2, target_views=1)
    stage = train.StageConfig(size=(16, 24))
    return cfg, model, stage, data.collate([data.get(0, stage)])
