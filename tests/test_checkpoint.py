"""Model files and checkpoints: exact round trips, clear mismatches, and no code execution."""

from __future__ import annotations

import json
import pickle
import re
import struct
import sys
from pathlib import Path

import pytest
import torch

from splatnet import checkpoint
from splatnet.errors import FormatError, ValidationError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _train_tiny import TinyConfig, TinyNet  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


class _Payload:
    """Unpickling this runs ``open(marker, 'w')``: proof that a loader executed code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _model(seed: int = 0, **cfg) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet(TinyConfig(**cfg))


def test_model_file_round_trip_is_exact(tmp_path):
    m = _model(hidden=5)
    path = checkpoint.save_model(tmp_path / "tiny", m)
    assert path.name == "tiny.safetensors" and (tmp_path / "tiny.json").is_file()
    meta = json.loads((tmp_path / "tiny.json").read_text())
    assert meta["arch"] == "tiny" and meta["config"]["hidden"] == 5
    assert meta["num_parameters"] == sum(p.numel() for p in m.parameters())
    for name in ("tiny.safetensors", "tiny.json", "tiny"):
        loaded = checkpoint.load_model(tmp_path / name)
        assert isinstance(loaded, TinyNet) and loaded.config == TinyConfig(hidden=5)
        assert not loaded.training
        for k, v in m.state_dict().items():
            assert torch.equal(loaded.state_dict()[k], v), k


def test_no_default_checkpoint_is_a_clear_error():
    if checkpoint.DEFAULT_MODEL.is_file():
        pytest.skip("a default checkpoint is shipped")
    with pytest.raises(FileNotFoundError, match="no default checkpoint is shipped yet"):
        checkpoint.load_model()


def test_architecture_mismatch_is_named(tmp_path):
    checkpoint.save_model(tmp_path / "a", _model(hidden=8))
    with pytest.raises(ValidationError, match=r"net\.0\.weight: file \(8, 4\) vs model \(16, 4\)"):
        checkpoint.load_state_strict(_model(hidden=16), checkpoint.read_model_file(
            tmp_path / "a.safetensors")[2], "a")
    meta = json.loads((tmp_path / "a.json").read_text())
    meta["arch"] = "resnet9000"
    (tmp_path / "b.json").write_text(json.dumps(meta))
    (tmp_path / "b.safetensors").write_bytes((tmp_path / "a.safetensors").read_bytes())
    with pytest.raises(FormatError, match="architecture 'tiny' but b.json says 'resnet9000'"):
        checkpoint.load_model(tmp_path / "b")


def test_resume_into_another_config_names_the_difference(tmp_path):
    m = _model()
    opt = torch.optim.AdamW(m.parameters())
    checkpoint.save_checkpoint(tmp_path, 1, m, opt, {}, model_config=m.config)
    ck = checkpoint.load_checkpoint(tmp_path)
    other = _model(hidden=9)
    with pytest.raises(ValidationError, match="hidden: checkpoint 8 vs 9"):
        checkpoint.check_same_architecture(ck, other, other.config)


def test_checkpoint_round_trip_restores_optimizer_exactly(tmp_path):
    m = _model()
    opt = torch.optim.AdamW([{"params": [m.gain], "weight_decay": 0.0},
                             {"params": list(m.net.parameters())}], lr=0.01, betas=(0.8, 0.9))
    for _ in range(3):
        opt.zero_grad()
        m(torch.randn(5, 4)).square().sum().backward()
        opt.step()
    checkpoint.save_checkpoint(tmp_path / "ck", 3, m, opt, {"note": "x"}, model_config=m.config)
    ck = checkpoint.load_checkpoint(tmp_path / "ck")
    assert ck.step == 3 and ck.trainer["note"] == "x" and ck.arch == "tiny"
    m2 = _model(seed=1)
    opt2 = torch.optim.AdamW([{"params": [m2.gain], "weight_decay": 0.0},
                              {"params": list(m2.net.parameters())}], lr=0.5)
    checkpoint.check_same_architecture(ck, m2, m2.config)
    opt2.load_state_dict(ck.optim_state)
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]  # betas stay tuples, lr restored
    for i in a["state"]:
        for k, v in a["state"][i].items():
            assert torch.equal(v, b["state"][i][k]), (i, k)
    # one more identical step on both gives identical parameters
    x = torch.randn(5, 4)
    for mm, oo in ((m, opt), (m2, opt2)):
        oo.zero_grad()
        mm(x).square().sum().backward()
        oo.step()
    for k, v in m.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k]), k


def test_rng_state_round_trip():
    import random

    import numpy as np

    state = json.loads(json.dumps(checkpoint.rng_state()))  # must survive JSON
    want = (torch.rand(3), random.random(), np.random.rand())
    checkpoint.set_rng_state(state)
    got = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(want[0], got[0]) and want[1:] == got[1:]
    with pytest.raises(FormatError, match="RNG state"):
        checkpoint.set_rng_state({"torch": 12})


def test_keep_prunes_old_steps_and_latest_points_at_newest(tmp_path):
    m = _model()
    for step in (1, 2, 3):
        checkpoint.save_checkpoint(tmp_path, step, m, None, {}, model_config=m.config, keep=2)
    assert sorted(p.name for p in tmp_path.glob("step_*")) == ["step_00000002", "step_00000003"]
    assert checkpoint.load_checkpoint(tmp_path).step == 3
    assert checkpoint.load_checkpoint(tmp_path).optim_state is None


def test_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    m = _model()
    opt = torch.optim.AdamW(m.parameters())
    checkpoint.save_checkpoint(tmp_path, 1, m, opt, {}, model_config=m.config)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "_optim_to_flat", boom)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save_checkpoint(tmp_path, 2, m, opt, {}, model_config=m.config)
    assert checkpoint.load_checkpoint(tmp_path).step == 1
    with pytest.raises(FileNotFoundError, match="incomplete"):
        (tmp_path / "latest.json").write_text('{"step": 2, "dir": "step_00000002"}')
        checkpoint.load_checkpoint(tmp_path)


# ---------------------------------------------------------------------------- hostile files
def _saved(tmp_path: Path) -> Path:
    m = _model()
    checkpoint.save_checkpoint(tmp_path / "ck", 1, m, torch.optim.AdamW(m.parameters()), {},
                               model_config=m.config)
    return tmp_path / "ck" / "step_00000001"


def test_pickle_payload_in_place_of_weights_is_rejected_not_run(tmp_path):
    step = _saved(tmp_path)
    marker = tmp_path / "pwned"
    (step / "model.safetensors").write_bytes(pickle.dumps({"w": _Payload(marker)}))
    with pytest.raises(FormatError, match="not a valid safetensors file"):
        checkpoint.load_model(step)
    # the same with torch.save's zip-of-pickles format
    torch.save({"w": _Payload(marker)}, step / "optim.safetensors")
    with pytest.raises(FormatError):
        checkpoint.load_checkpoint(step)
    assert not marker.exists()


def test_forged_safetensors_headers_are_rejected(tmp_path):
    step = _saved(tmp_path)
    f = step / "model.safetensors"
    good = f.read_bytes()
    f.write_bytes(struct.pack("<Q", 1 << 62) + good[8:])  # header length far past the file
    with pytest.raises(FormatError, match="not a valid safetensors"):
        checkpoint.load_model(step)
    header = json.dumps({"w": {"dtype": "F32", "shape": [1 << 40], "data_offsets": [0, 4]}})
    f.write_bytes(struct.pack("<Q", len(header)) + header.encode() + b"\0" * 4)
    with pytest.raises(FormatError, match="not a valid safetensors"):
        checkpoint.load_model(step)
    # valid safetensors, but optimiser state where model weights belong
    f.write_bytes((step / "optim.safetensors").read_bytes())
    with pytest.raises(FormatError, match="expected a splatnet-model file"):
        checkpoint.load_model(step)


def test_json_cannot_name_code_to_run(tmp_path):
    step = _saved(tmp_path)
    meta = json.loads((step / "model.json").read_text())
    for arch in ("os.system", "subprocess:Popen", "__import__('os').system('x')"):
        meta["arch"] = arch
        (step / "model.json").write_text(json.dumps(meta))
        with pytest.raises((ValidationError, FormatError)):
            checkpoint.load_model(step)
    meta["arch"] = "tiny"
    meta["config"] = {"hidden": 8, "__class__": "os.system"}
    (step / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ValidationError, match="unknown config key 'model.__class__'"):
        checkpoint.load_model(step)
    meta["config"] = {"hidden": "8"}
    (step / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ValidationError, match="model.hidden"):
        checkpoint.load_model(step)
    (step / "model.json").write_text('{"format": "splatnet-model", "version": 1, "arch": NaN}')
    with pytest.raises(FormatError, match="not valid JSON"):
        checkpoint.load_model(step)


def test_latest_pointer_cannot_escape_the_directory(tmp_path):
    step = _saved(tmp_path)
    for bad in ("../../etc", "/etc", ".."):
        (step.parent / "latest.json").write_text(json.dumps({"step": 1, "dir": bad}))
        with pytest.raises(FormatError, match="step directory"):
            checkpoint.load_checkpoint(step.parent)


def test_malformed_optimizer_section_is_rejected(tmp_path):
    step = _saved(tmp_path)
    t = json.loads((step / "trainer.json").read_text())
    t["optimizer"]["param_groups"] = "lambda: 0"
    (step / "trainer.json").write_text(json.dumps(t))
    with pytest.raises(FormatError, match="malformed optimizer"):
        checkpoint.load_checkpoint(step)


def test_no_pickle_in_the_loading_code():
    """Static guard: nothing on the load path can unpickle or import a name from a file."""
    for name in ("checkpoint.py", "config_io.py", "train.py"):
        src = (REPO / "splatnet" / name).read_text()
        for banned in ("import pickle", "torch.load(", "yaml.unsafe_load", "yaml.full_load",
                       "yaml.UnsafeLoader", "yaml.FullLoader"):
            assert banned not in src, (name, banned)
        assert not re.search(r"(?<![\w.])(eval|exec)\(", src), name
        # import_module only ever receives the fixed built-in table, never file contents
        assert src.count("import_module(") == (1 if name == "checkpoint.py" else 0), name
