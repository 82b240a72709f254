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

from splatnet.errors import FormatError, ValidationError
from splatnet.io import checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from train_custom_model import TinyConfig, TinyNet  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


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
    for name in ("io/checkpoint.py", "config_io.py", "train/loop.py"):
        src = (REPO / "splatnet" / name).read_text()
        for banned in ("import pickle", "torch.load(", "yaml.unsafe_load", "yaml.full_load",
                       "yaml.UnsafeLoader", "yaml.FullLoader"):
            assert banned not in src, (name, banned)
        assert not re.search(r"(?<![\w.])(eval|exec)\(", src), name
        # import_module only ever receives the fixed built-in table, never file contents
        assert src.count("import_module(") == (1 if name == "io/checkpoint.py" else 0), name


# ---------------------------------------------------------------------------- sidecar checks
SMALL_SPLATNET = {
    "encoder": {"stem_dim": 16, "mid_dim": 16, "low_dim": 16, "matching_dim": 8,
                "context_dim": 8},
    "cost_volume": {"num_candidates": 4, "unet_dims": [8, 8, 8]},
    "head": {"hidden_dim": 8},
    "sky": {"hidden_dim": 8, "latent_dim": 4},
}


def _small_splatnet(**overrides):
    from splatnet.config_io import from_dict
    from splatnet.models import SplatNet, SplatNetConfig

    data = json.loads(json.dumps(SMALL_SPLATNET))
    for key, value in overrides.items():
        section, name = key.split(".")
        data.setdefault(section, {})[name] = value
    torch.manual_seed(0)
    return SplatNet(from_dict(SplatNetConfig, data))


def _edit_sidecar(sidecar: Path, edit) -> None:
    meta = json.loads(sidecar.read_text())
    edit(meta)
    sidecar.write_text(json.dumps(meta))


def test_unknown_sidecar_keys_name_the_file(tmp_path):
    checkpoint.save_model(tmp_path / "tiny", _model())
    sidecar = tmp_path / "tiny.json"
    _edit_sidecar(sidecar, lambda m: m["config"].update(widht=3))
    with pytest.raises(ValidationError) as err:
        checkpoint.load_model(tmp_path / "tiny")
    assert str(sidecar) in str(err.value) and "model.widht" in str(err.value)
    assert len(str(err.value).splitlines()) == 1
    _edit_sidecar(sidecar, lambda m: (m["config"].pop("widht"), m.update(payload="x")))
    with pytest.raises(FormatError) as err:
        checkpoint.load_model(tmp_path / "tiny")
    assert str(sidecar) in str(err.value) and "'payload'" in str(err.value)


_BUILT_ON: list[str] = []


class _SpyNet(TinyNet):
    """TinyNet that records the device each instance was built on."""

    def __init__(self, config) -> None:
        _BUILT_ON.append(torch.empty(0).device.type)
        super().__init__(config)


def test_huge_width_in_sidecar_is_refused_before_any_allocation(tmp_path):
    import dataclasses

    checkpoint.register_model("tiny_spy", _SpyNet, dataclasses.make_dataclass(
        "SpyConfig", [], bases=(TinyConfig,)))
    m = _model()
    checkpoint.save_model(tmp_path / "m", m, arch="tiny_spy")
    _BUILT_ON.clear()
    assert isinstance(checkpoint.load_model(tmp_path / "m"), _SpyNet)
    assert "cpu" in _BUILT_ON
    # 10^12 hidden units: 16 TB of parameters if the model were built before the check.
    _edit_sidecar(tmp_path / "m.json", lambda meta: meta["config"].update(hidden=10**12))
    _BUILT_ON.clear()
    with pytest.raises(ValidationError) as err:
        checkpoint.load_model(tmp_path / "m")
    msg = str(err.value)
    assert str(tmp_path / "m") in msg, msg
    assert "net.0.weight: file (8, 4) vs model (1000000000000, 4)" in msg, msg
    assert "cpu" not in _BUILT_ON  # nothing was built on a real device


def test_splatnet_sidecar_width_is_checked_against_the_weights(tmp_path):
    checkpoint.save_model(tmp_path / "net", _small_splatnet())
    loaded = checkpoint.load_model(tmp_path / "net")  # the shapes of the real network check out
    assert loaded.config.encoder.stem_dim == 16
    _edit_sidecar(tmp_path / "net.json",
                  lambda meta: meta["config"]["encoder"].update(stem_dim=4096))
    with pytest.raises(ValidationError, match=r"net\.json.*encoder\.stem\.2\.weight: file "
                                              r"\(16, 8, 3, 3\) vs model \(4096, 2048, 3, 3\)"):
        checkpoint.load_model(tmp_path / "net.safetensors")
    _edit_sidecar(tmp_path / "net.json",
                  lambda meta: meta["config"]["encoder"].update(stem_dim=10**9))
    with pytest.raises(ValidationError, match=r"net\.json.*encoder\.stem_dim"):
        checkpoint.load_model(tmp_path / "net.safetensors")


def test_sidecar_weight_paths_cannot_leave_its_folder(tmp_path):
    from splatnet.models.encoder import Encoder

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    model = _small_splatnet()
    enc_file = outside / "enc.safetensors"
    from safetensors.torch import save_file

    save_file(model.encoder.state_dict(), str(enc_file))  # a valid file: reading it would work
    folder = tmp_path / "ck"
    folder.mkdir()
    checkpoint.save_model(folder / "net", model)
    (folder / "link").symlink_to(outside)
    read: list[str] = []
    original = Encoder.load_weights

    def spy(self, path):
        read.append(str(path))
        return original(self, path)

    Encoder.load_weights = spy
    try:
        for bad in (str(enc_file), "../elsewhere/enc.safetensors", "link/enc.safetensors"):
            _edit_sidecar(folder / "net.json",
                          lambda meta, b=bad: meta["config"]["encoder"].update(weights=b))
            with pytest.raises(FormatError) as err:
                checkpoint.load_model(folder / "net")
            msg = str(err.value)
            assert str(folder / "net.json") in msg and "encoder.weights" in msg, msg
            with pytest.raises(FormatError, match="encoder.weights"):
                checkpoint.read_model_file(folder / "net")
        assert read == []  # refused, never opened
        # inside the folder is allowed, relative to the sidecar (not to the working directory)
        save_file(model.encoder.state_dict(), str(folder / "enc.safetensors"))
        _edit_sidecar(folder / "net.json",
                      lambda meta: meta["config"]["encoder"].update(weights="enc.safetensors"))
        checkpoint.load_model(folder / "net")
        cfg = checkpoint.read_model_file(folder / "net")[1]
        assert Path(cfg["encoder"]["weights"]) == (folder / "enc.safetensors").resolve()
    finally:
        Encoder.load_weights = original
    assert all(Path(p).resolve() == (folder / "enc.safetensors").resolve() for p in read)


def test_a_model_trained_from_an_absolute_weights_path_saves_and_loads(tmp_path):
    from safetensors.torch import save_file

    from splatnet.config_io import to_dict

    enc_file = tmp_path / "pretrained" / "enc.safetensors"
    enc_file.parent.mkdir()
    save_file(_small_splatnet().encoder.state_dict(), str(enc_file))
    model = _small_splatnet(**{"encoder.weights": str(enc_file)})
    ck_dir = tmp_path / "run" / "checkpoints"
    opt = torch.optim.AdamW(model.parameters())
    checkpoint.save_checkpoint(ck_dir, 1, model, opt, {}, model_config=model.config)
    meta = json.loads((ck_dir / "step_00000001" / "model.json").read_text())
    assert meta["config"]["encoder"]["weights"] is None  # the weights are in the file beside it
    loaded = checkpoint.load_model(ck_dir)
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    # resuming the run (same config, weights path and all) is not a config mismatch
    checkpoint.check_same_architecture(checkpoint.load_checkpoint(ck_dir), model, model.config)
    assert to_dict(model.config)["encoder"]["weights"] == str(enc_file)


# ---------------------------------------------------------------------------- what a checkpoint is
def test_a_foreign_file_gets_what_a_checkpoint_is(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "model.pt")
    with pytest.raises(FormatError) as err:
        checkpoint.load_model(tmp_path / "model.pt")
    msg = str(err.value)
    assert str(tmp_path / "model.pt") in msg and "not a splatnet checkpoint" in msg, msg
    assert "NAME.safetensors" in msg and "NAME.json" in msg and ".json: file not found" not in msg
    assert len(msg.splitlines()) == 1
    with pytest.raises(FileNotFoundError) as err:
        checkpoint.load_model(tmp_path / "nothing.pt")
    msg = str(err.value)
    assert "nothing.pt.safetensors" in msg and "nothing.pt.json" in msg, msg


@pytest.mark.parametrize("remove", ["json", "safetensors"])
@pytest.mark.parametrize("given", ["", ".safetensors", ".json"])
def test_a_half_checkpoint_names_the_missing_file(tmp_path, remove, given):
    checkpoint.save_model(tmp_path / "tiny", _model())
    (tmp_path / f"tiny.{remove}").unlink()
    keep = "safetensors" if remove == "json" else "json"
    with pytest.raises(FileNotFoundError) as err:
        checkpoint.load_model(tmp_path / f"tiny{given}")
    msg = str(err.value)
    assert msg.startswith(f"{tmp_path / f'tiny.{remove}'}: missing"), msg
    assert f"tiny.{keep}" in msg and "tiny.safetensors (weights)" in msg, msg
    with pytest.raises(FileNotFoundError, match=f"tiny.{remove}: missing"):
        checkpoint.init_weights(_model(), TinyConfig(), tmp_path / f"tiny{given}")


def test_a_dotted_name_is_still_a_checkpoint_name(tmp_path):
    checkpoint.save_model(tmp_path / "net.v2", _model(hidden=3))
    assert checkpoint.load_model(tmp_path / "net.v2").config.hidden == 3


def test_a_file_of_the_earlier_head_layout_passes_the_shape_check(tmp_path):
    """The check before building applies the architecture's layout upgrade to the header's
    shapes, so legacy files still load (and load exactly what the upgrade makes of them)."""
    from safetensors.torch import save_file

    from splatnet.models.splatnet import upgrade_state_dict

    net = _small_splatnet()
    checkpoint.save_model(tmp_path / "old", net)
    hidden, cu = net.head.mix_coarse.weight.shape[:2]
    cs = net.head.mix_features.weight.shape[1]
    k = 5
    g = torch.Generator().manual_seed(1)
    legacy = {n: t for n, t in net.state_dict().items()
              if not n.startswith(("head.mix_coarse", "head.net.2", "head.mix_features"))}
    for name, shape in (("head_context.weight", (k, cu, 1, 1)), ("head_context.bias", (k,)),
                        ("head.mix_features.weight", (hidden, k + cs, 1, 1)),
                        ("head.mix_features.bias", (hidden,)),
                        ("head.net.2.weight", (hidden, 1, 3, 3)), ("head.net.2.bias", (hidden,)),
                        ("head.net.3.weight", (hidden, hidden, 1, 1)),
                        ("head.net.3.bias", (hidden,))):
        legacy[name] = torch.randn(shape, generator=g)
    save_file(legacy, str(tmp_path / "old.safetensors"),
              metadata={"format": checkpoint.MODEL_FORMAT, "arch": "splatnet"})
    loaded = checkpoint.load_model(tmp_path / "old")
    for name, t in upgrade_state_dict(legacy).items():
        assert torch.equal(loaded.state_dict()[name], t), name
    # a legacy file whose parts do not fit each other is a clear error, not a crash
    legacy["head.mix_features.weight"] = torch.randn(hidden, 3, 1, 1)
    save_file(legacy, str(tmp_path / "old.safetensors"),
              metadata={"format": checkpoint.MODEL_FORMAT, "arch": "splatnet"})
    with pytest.raises(ValidationError, match="old.safetensors"):
        checkpoint.load_model(tmp_path / "old")


def test_an_unknown_architecture_names_the_file(tmp_path):
    from safetensors.torch import save_file

    checkpoint.save_model(tmp_path / "m", _model())
    _edit_sidecar(tmp_path / "m.json", lambda meta: meta.update(arch="resnet9000"))
    save_file({"w": torch.ones(1)}, str(tmp_path / "m.safetensors"),
              metadata={"format": checkpoint.MODEL_FORMAT, "arch": "resnet9000"})
    with pytest.raises(ValidationError, match=r"m\.json: unknown model architecture 'resnet9000'"):
        checkpoint.load_model(tmp_path / "m")
