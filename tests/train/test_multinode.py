"""Training across machines: two torchrun node groups (``--nnodes 2 --node-rank 0/1``, static
rendezvous on 127.0.0.1, gloo over the loopback interface) give the parameters of one process
with the same global batch (docs/training.md, "Several machines")."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from test_train import params, train

from splatnet.config_io import from_dict
from splatnet.io import checkpoint

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "examples"))
from train_custom_model import TinyTrainConfig  # noqa: E402

COMMON = ["schedule.steps=4", "schedule.warmup_steps=1", "optim.lr=0.05", "data.batch_size=4",
          "data.micro_batch=1", "log.every=1", "log.progress=false", "log.tensorboard=false",
          "model.dropout=0.0", "device=cpu"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_node_groups_match_one_process(tmp_path):
    port = _free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), GLOO_SOCKET_IFNAME="lo")
    run_dir = tmp_path / "two_nodes"
    nodes = []
    for rank in (0, 1):  # what each machine runs; here both on this one
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank",
               str(rank), "--nproc-per-node", "1", "--master-addr", "127.0.0.1", "--master-port",
               str(port), str(REPO / "examples" / "train_custom_model.py"), *COMMON,
               f"log.dir={run_dir}"]
        nodes.append(subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    try:
        outs = [p.communicate(timeout=300)[0] for p in nodes]
    finally:
        for p in nodes:
            if p.poll() is None:
                p.kill()
    for p, out in zip(nodes, outs):
        assert p.returncode == 0, out[-3000:]

    single = params(train(from_dict(TinyTrainConfig, {
        "schedule": {"steps": 4, "warmup_steps": 1}, "optim": {"lr": 0.05},
        "data": {"batch_size": 4, "micro_batch": 1},
        "log": {"dir": str(tmp_path / "one"), "progress": False, "tensorboard": False},
        "model": {"dropout": 0.0}})))
    two = checkpoint.load_checkpoint(run_dir / "checkpoints")
    assert two.step == 4 and two.trainer["world_size"] == 2
    for k, v in single.items():
        torch.testing.assert_close(two.model_state[k], v, rtol=1e-5, atol=1e-6)
    init = checkpoint.build_model("tiny", {"dropout": 0.0}).state_dict()
    assert any(not torch.allclose(init[k], v) for k, v in single.items())  # training moved them
    rows = (run_dir / "metrics.jsonl").read_text().splitlines()  # only the global rank 0 wrote
    assert [json.loads(r)["step"] for r in rows] == [1, 2, 3, 4]
