"""The training loop with a tiny stand-in model: resume exactness, DDP equivalence, outputs."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from splatnet.config_io import from_dict
from splatnet.io import checkpoint
from splatnet.train import DistInfo, OptimConfig, ScheduleConfig, Trainer, lr_at, run

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from train_custom_model import TinyConfig, TinyData, TinyNet, TinyTask, TinyTrainConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def tiny_cfg(tmp_path: Path, **over) -> TinyTrainConfig:
    data = {
        "schedule": {"steps": 8, "warmup_steps": 2},
        "optim": {"lr": 0.05, "min_lr": 0.001, "grad_clip": 0.5, "weight_decay": 0.1},
        "data": {"batch_size": 4, "micro_batch": 2},
        "log": {"dir": str(tmp_path / "run"), "every": 1, "checkpoint_every": 3, "keep": 0,
                "progress": False, "tensorboard": False},
        "model": {"dropout": 0.2},
    }
    for k, v in over.items():
        data.setdefault(k, {}).update(v) if isinstance(v, dict) else data.__setitem__(k, v)
    return from_dict(TinyTrainConfig, data)


def train(cfg, **kw):
    return run(cfg, data=TinyData(), task=TinyTask(), **kw)


def params(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_lr_schedule_matches_hand_computation():
    o = OptimConfig(lr=1.0, min_lr=0.1)
    s = ScheduleConfig(steps=12, warmup_steps=2)
    assert lr_at(0, o, s) == pytest.approx(0.5)
    assert lr_at(1, o, s) == pytest.approx(1.0)
    assert lr_at(2, o, s) == pytest.approx(1.0)  # cosine starts at the peak
    assert lr_at(7, o, s) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 0.5)))
    assert lr_at(12, o, s) == pytest.approx(0.1)
    assert lr_at(50, o, s) == pytest.approx(0.1)


def test_training_reduces_loss_and_writes_outputs(tmp_path):
    cfg = tiny_cfg(tmp_path, schedule={"steps": 30, "warmup_steps": 3})
    train(cfg)
    run_dir = tmp_path / "run"
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 31))
    assert rows[-1]["loss"] < 0.5 * rows[0]["loss"]
    assert {"loss", "mae", "lr", "grad_norm", "size"} <= set(rows[0])
    assert (run_dir / "config.yaml").is_file()
    latest = json.loads((run_dir / "checkpoints" / "latest.json").read_text())
    assert latest == {"step": 30, "dir": "step_00000030"}
    model = checkpoint.load_model(run_dir)  # a run directory resolves to its latest checkpoint
    assert not model.training


def test_resume_continues_exactly(tmp_path):
    straight = params(train(tiny_cfg(tmp_path / "a")))
    first = tiny_cfg(tmp_path / "b")
    train(first, stop_at=3)
    ck = checkpoint.load_checkpoint(tmp_path / "b" / "run" / "checkpoints")
    assert ck.step == 3
    resumed = params(train(first, resume=str(tmp_path / "b" / "run")))
    for k in straight:
        assert torch.equal(straight[k], resumed[k]), k
    # the optimiser state at the end is identical too
    a = checkpoint.load_checkpoint(tmp_path / "a" / "run" / "checkpoints")
    b = checkpoint.load_checkpoint(tmp_path / "b" / "run" / "checkpoints")
    assert a.step == b.step == 8
    for i, st in a.optim_state["state"].items():
        for k, v in st.items():
            w = b.optim_state["state"][i][k]
            assert torch.equal(v, w) if isinstance(v, torch.Tensor) else v == w
    rows = [json.loads(x)["step"] for x in
            (tmp_path / "b" / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows == list(range(1, 9))  # no duplicated or lost steps across the resume


def test_resume_exactness_test_can_fail(tmp_path):
    """Guard against a vacuous exactness test: weights alone (no optimiser state) do not match."""
    straight = params(train(tiny_cfg(tmp_path / "a")))
    cfg = tiny_cfg(tmp_path / "b")
    train(cfg, stop_at=3)
    ck = checkpoint.load_checkpoint(tmp_path / "b" / "run" / "checkpoints")
    model = TinyNet(TinyConfig(dropout=0.2))
    checkpoint.load_state_strict(model, ck.model_state, "test")
    trainer = Trainer(cfg, model, TinyData(), TinyTask())
    trainer.step = 3
    partial = params(trainer.fit())
    assert not all(torch.equal(straight[k], partial[k]) for k in straight)


def test_micro_batches_accumulate_to_the_full_batch(tmp_path):
    base = {"model": {"dropout": 0.0}}
    a = params(train(tiny_cfg(tmp_path / "a", data={"batch_size": 4, "micro_batch": 1}, **base)))
    b = params(train(tiny_cfg(tmp_path / "b", data={"batch_size": 4, "micro_batch": 4}, **base)))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_resume_with_another_architecture_is_refused(tmp_path):
    cfg = tiny_cfg(tmp_path)
    train(cfg, stop_at=3)
    other = tiny_cfg(tmp_path, model={"hidden": 16})
    with pytest.raises(ValueError, match="hidden"):
        train(other, resume=str(tmp_path / "run"))


def test_batch_must_split_evenly_across_ranks(tmp_path):
    cfg = tiny_cfg(tmp_path, data={"batch_size": 3})
    with pytest.raises(ValueError, match="divisible"):
        Trainer(cfg, TinyNet(TinyConfig()), TinyData(), TinyTask(), DistInfo(0, 2, 0))


def _torchrun(args: list[str], nproc: int, tmp_path: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           str(REPO / "examples" / "train_custom_model.py"), *args]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_match_one_process(tmp_path):
    """torchrun, 2 gloo ranks × 2 samples == 1 process × 4 samples (same global batch)."""
    common = ["schedule.steps=5", "schedule.warmup_steps=1", "optim.lr=0.05",
              "data.batch_size=4", "data.micro_batch=1", "log.every=1", "log.progress=false",
              "log.tensorboard=false", "model.dropout=0.0", "device=cpu"]
    _torchrun([*common, f"log.dir={tmp_path / 'ddp'}"], 2, tmp_path)
    single = params(train(from_dict(TinyTrainConfig, {
        "schedule": {"steps": 5, "warmup_steps": 1}, "optim": {"lr": 0.05},
        "data": {"batch_size": 4, "micro_batch": 1},
        "log": {"dir": str(tmp_path / "one"), "progress": False, "tensorboard": False},
        "model": {"dropout": 0.0}})))
    ddp = checkpoint.load_checkpoint(tmp_path / "ddp" / "checkpoints")
    assert ddp.step == 5 and ddp.trainer["world_size"] == 2
    for k, v in single.items():
        torch.testing.assert_close(ddp.model_state[k], v, rtol=1e-5, atol=1e-6)
    # and the parameters moved: the comparison is not between two untouched initialisations
    init = checkpoint.build_model("tiny", {"dropout": 0.0}).state_dict()
    assert any(not torch.allclose(init[k], v) for k, v in single.items())
    # only rank 0 wrote: one metrics file with one row per step
    rows = (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows] == [1, 2, 3, 4, 5]


def test_resume_auto_starts_fresh_then_continues(tmp_path):
    from train_custom_model import run_main

    args = ["schedule.steps=6", "schedule.warmup_steps=1", "data.batch_size=2", "log.every=1",
            "log.progress=false", "log.tensorboard=false", "log.checkpoint_every=2",
            "model.dropout=0.2"]
    assert run_main([*args, f"log.dir={tmp_path / 'a'}"]) == 0
    for stop in ("3", "6"):  # a job killed after step 3, then restarted with the same command
        assert run_main([*args, f"log.dir={tmp_path / 'b'}", "--resume", "auto",
                         "--stop-at", stop]) == 0
    a = checkpoint.load_checkpoint(tmp_path / "a" / "checkpoints")
    b = checkpoint.load_checkpoint(tmp_path / "b" / "checkpoints")
    assert a.step == b.step == 6
    for k, v in a.model_state.items():
        assert torch.equal(v, b.model_state[k]), k


def test_periodic_eval_is_logged_and_does_not_change_training(tmp_path):
    calls = []

    def evaluate(model, step, stage):
        assert not model.training
        calls.append(step)
        x = torch.ones(1, 4)
        return {"out": float(model(x).sum())}

    plain = params(train(tiny_cfg(tmp_path / "a")))
    cfg = tiny_cfg(tmp_path / "b", eval={"every": 3})
    evald = params(run(cfg, data=TinyData(), task=TinyTask(), evaluate=evaluate))
    assert calls == [3, 6, 8]
    for k in plain:
        assert torch.equal(plain[k], evald[k]), k
    rows = [json.loads(x) for x in (tmp_path / "b" / "run" / "metrics.jsonl").read_text()
            .splitlines()]
    assert [r["step"] for r in rows if "eval_out" in r] == [3, 6, 8]


def test_eval_seeds_must_not_be_training_seeds(tmp_path):
    with pytest.raises(ValueError, match=r"\[3\] are also training seeds"):
        tiny_cfg(tmp_path, data={"synthetic": {"seeds": [1, 2, 3]}},
                 eval={"every": 1, "synthetic_seeds": [3, 4]})


def test_non_finite_loss_stops_the_run_with_the_step(tmp_path):
    class NanAfterTwo(TinyTask):
        def loss(self, model, batch, step, stage):
            loss, m = super().loss(model, batch, step, stage)
            return (loss * float("nan") if step == 2 else loss), m

    with pytest.raises(FloatingPointError, match="step 2: loss is nan"):
        run(tiny_cfg(tmp_path), data=TinyData(), task=NanAfterTwo())
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows] == [1, 2]  # what ran is still logged


def test_tensorboard_is_written_when_installed(tmp_path, monkeypatch):
    """The tensorboard package is optional; a recording stand-in checks the wiring."""
    import types

    events = []

    class Writer:
        def __init__(self, log_dir, purge_step=None):
            events.append(("open", Path(log_dir).name, purge_step))

        def add_scalar(self, tag, value, step):
            events.append((tag, step))

        def close(self):
            events.append(("close",))

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard",
                        types.SimpleNamespace(SummaryWriter=Writer))
    train(tiny_cfg(tmp_path, log={"tensorboard": True}, schedule={"steps": 2}))
    assert events[0] == ("open", "tensorboard", 1)
    assert ("train/loss", 1) in events and ("train/mae", 2) in events
    assert events[-1] == ("close",)


def test_prefetch_changes_nothing_but_time(tmp_path):
    a = params(train(tiny_cfg(tmp_path / "a", data={"prefetch": True})))
    b = params(train(tiny_cfg(tmp_path / "b", data={"prefetch": False})))
    for k in a:
        assert torch.equal(a[k], b[k]), k
