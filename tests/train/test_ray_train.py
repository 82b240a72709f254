"""Ray Train's TorchTrainer around splatnet's training loop (examples/train_on_ray.py): 2 Ray
workers over gloo give the parameters of one process with the same global batch. Slow (a Ray
cluster and its workers start); skipped without ``ray[train]``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from test_train import params, train

from splatnet.config_io import from_dict
from splatnet.io import checkpoint

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "examples"))
from train_custom_model import TinyTrainConfig  # noqa: E402

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # a local cluster on 127.0.0.1
ray = pytest.importorskip("ray")
pytest.importorskip("ray.train.torch", exc_type=ImportError)


@pytest.mark.slow
def test_ray_train_two_workers_match_one_process(tmp_path, monkeypatch):
    from train_on_ray import main

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO / "examples"), str(REPO)]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    run_dir = tmp_path / "ray"
    argv = ["schedule.steps=4", "schedule.warmup_steps=1", "optim.lr=0.05", "data.batch_size=4",
            "data.micro_batch=1", "log.every=1", "log.progress=false", "log.tensorboard=false",
            "model.dropout=0.0", "device=cpu", f"log.dir={run_dir}"]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=128 << 20)
    try:
        assert main(["--workers", "2", "--storage", str(tmp_path / "ray_results"), "--entry",
                     "train_custom_model:run_main", "--", *argv]) == 0
    finally:
        ray.shutdown()
    single = params(train(from_dict(TinyTrainConfig, {
        "schedule": {"steps": 4, "warmup_steps": 1}, "optim": {"lr": 0.05},
        "data": {"batch_size": 4, "micro_batch": 1},
        "log": {"dir": str(tmp_path / "one"), "progress": False, "tensorboard": False},
        "model": {"dropout": 0.0}})))
    two = checkpoint.load_checkpoint(run_dir / "checkpoints")
    assert two.step == 4 and two.trainer["world_size"] == 2
    for k, v in single.items():
        torch.testing.assert_close(two.model_state[k], v, rtol=1e-5, atol=1e-6)
