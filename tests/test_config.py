"""Typed configs from YAML and KEY=VALUE overrides: unknown keys and wrong types are errors."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from splatnet.config_io import (
    describe_fields,
    format_help,
    from_dict,
    load_config,
    merge_overrides,
    parse_override,
    replace,
    to_dict,
)
from splatnet.errors import ValidationError


@dataclass
class Inner:
    lr: float = 0.1
    """Learning rate."""
    size: tuple[int, int] = (4, 8)
    """Height and width."""
    mode: Literal["a", "b"] = "a"
    """Which mode."""


@dataclass
class Outer:
    name: str = "x"
    """A name."""
    steps: int = 3
    """How many steps."""
    flag: bool = False
    """A switch."""
    seeds: list[int] = field(default_factory=lambda: [1, 2])
    """Some seeds."""
    inner: Inner = field(default_factory=Inner)
    """Nested section."""
    maybe: Inner | None = None
    """Optional section."""
    stages: list[Inner] = field(default_factory=list)
    """A list of sections."""
    note: str | None = None
    """Optional text."""


def test_defaults_and_partial_nested_overrides():
    cfg = from_dict(Outer, {"inner": {"lr": 1}, "stages": [{"mode": "b"}, {}]})
    assert cfg.inner == Inner(lr=1.0, size=(4, 8))
    assert isinstance(cfg.inner.lr, float)  # int accepted for float, stored as float
    assert cfg.stages == [Inner(mode="b"), Inner()]
    assert cfg.maybe is None and cfg.steps == 3


def test_lists_become_tuples_for_tuple_fields():
    cfg = from_dict(Outer, {"inner": {"size": [16, 32]}, "maybe": {}})
    assert cfg.inner.size == (16, 32)
    assert cfg.maybe == Inner()


@pytest.mark.parametrize("data, key", [
    ({"stepz": 1}, "stepz"),
    ({"inner": {"learning_rate": 1.0}}, "inner.learning_rate"),
    ({"stages": [{}, {"bogus": 1}]}, "stages[1].bogus"),
    ({"maybe": {"sizes": [1, 2]}}, "maybe.sizes"),
])
def test_unknown_key_is_an_error_naming_it(data, key):
    with pytest.raises(ValidationError, match=re.escape(f"unknown config key '{key}'")):
        from_dict(Outer, data)


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(ValidationError, match="did you mean 'steps'"):
        from_dict(Outer, {"step": 3})


@pytest.mark.parametrize("data, key, want", [
    ({"steps": "3"}, "steps", "int"),
    ({"steps": 3.5}, "steps", "int"),
    ({"steps": True}, "steps", "int"),  # bool is not an int here
    ({"flag": 1}, "flag", "bool"),
    ({"name": 5}, "name", "str"),
    ({"inner": {"lr": "fast"}}, "inner.lr", "float"),
    ({"inner": {"size": [1, 2, 3]}}, "inner.size", "2 items"),
    ({"inner": {"size": 4}}, "inner.size", "list"),
    ({"inner": {"mode": "c"}}, "inner.mode", "one of"),
    ({"seeds": [1, "two"]}, r"seeds\[1\]", "int"),
    ({"inner": 3}, "inner", "mapping"),
    ({"steps": None}, "steps", "int"),
])
def test_wrong_type_is_an_error_naming_the_key(data, key, want):
    with pytest.raises(ValidationError, match=rf"{key}.*{want}"):
        from_dict(Outer, data)


def test_overrides_parse_values_as_yaml():
    assert parse_override("inner.lr=1e-3") == (["inner", "lr"], 0.001)
    assert parse_override("seeds=[3, 4]") == (["seeds"], [3, 4])
    assert parse_override("note=null") == (["note"], None)
    assert parse_override("name=a=b") == (["name"], "a=b")
    assert parse_override("x=-2E+4") == (["x"], -20000.0)
    assert parse_override("x=3") == (["x"], 3) and parse_override("x=0.5") == (["x"], 0.5)
    merged = merge_overrides({"inner": {"lr": 2}}, ["inner.size=[1, 2]", "maybe.lr=3"])
    assert merged == {"inner": {"lr": 2, "size": [1, 2]}, "maybe": {"lr": 3}}
    for bad in ("steps", "=3", "a..b=1"):
        with pytest.raises(ValidationError, match="override"):
            parse_override(bad)
    with pytest.raises(ValidationError, match="is a value, not a section"):
        merge_overrides({"steps": 3}, ["steps.x=1"])


def test_yaml_file_then_overrides(tmp_path: Path):
    p = tmp_path / "c.yaml"
    p.write_text("steps: 10\ninner:\n  lr: 0.5\n")
    cfg = load_config(Outer, p, ["inner.lr=0.25", "flag=true"])
    assert (cfg.steps, cfg.inner.lr, cfg.flag) == (10, 0.25, True)
    p.write_text("steps: 10\ninner:\n  lrr: 0.5\n")
    with pytest.raises(ValidationError, match=r"c\.yaml: unknown config key 'inner\.lrr'"):
        load_config(Outer, p)
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ValidationError, match="mapping at the top level"):
        load_config(Outer, p)
    with pytest.raises(FileNotFoundError):
        load_config(Outer, tmp_path / "missing.yaml")


def test_yaml_python_tags_are_rejected_not_executed(tmp_path: Path):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.yaml"
    p.write_text(f"steps: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ValidationError, match="not valid YAML"):
        load_config(Outer, p)
    with pytest.raises(ValidationError):
        parse_override(f"steps=!!python/object/apply:os.system ['touch {marker}']")
    assert not marker.exists()


def test_round_trip_and_replace():
    cfg = from_dict(Outer, {"stages": [{"lr": 2.0}], "maybe": {"mode": "b"}})
    data = to_dict(cfg)
    assert data["inner"]["size"] == [4, 8] and data["stages"][0]["lr"] == 2.0
    assert from_dict(Outer, data) == cfg
    cfg2 = replace(cfg, ["inner.lr=0.5"])
    assert cfg2.inner.lr == 0.5 and cfg.inner.lr == 0.1


def test_help_lists_every_leaf_with_its_docstring():
    rows = {r[0]: r for r in describe_fields(Outer)}
    assert set(rows) == {"name", "steps", "flag", "seeds", "inner.lr", "inner.size", "inner.mode",
                         "maybe", "stages", "note"}
    assert rows["inner.lr"][3] == "Learning rate."
    assert rows["steps"][1:] == ("int", "3", "How many steps.")
    text = format_help(Outer)
    assert "inner.size" in text and "Height and width." in text


# ---------------------------------------------------------------------------- the real configs
NAN = float("nan")


@pytest.mark.parametrize("data, key", [
    ({"encoder": {"stem_dim": 0}}, "encoder.stem_dim"),
    ({"encoder": {"mid_dim": -1}}, "encoder.mid_dim"),
    ({"encoder": {"low_dim": 10**9}}, "encoder.low_dim"),
    ({"encoder": {"matching_dim": 0}}, "encoder.matching_dim"),
    ({"encoder": {"context_dim": 4097}}, "encoder.context_dim"),
    ({"cost_volume": {"num_candidates": 10**6}}, "cost_volume.num_candidates"),
    ({"cost_volume": {"temporal_sources": -1}}, "cost_volume.temporal_sources"),
    ({"cost_volume": {"rig_neighbors": 10**6}}, "cost_volume.rig_neighbors"),
    ({"cost_volume": {"unet_dims": [8, 0, 8]}}, "cost_volume.unet_dims"),
    ({"cost_volume": {"lidar_dropout": 1.5}}, "cost_volume.lidar_dropout"),
    ({"head": {"hidden_dim": 0}}, "head.hidden_dim"),
    ({"head": {"max_velocity": -1.0}}, "head.max_velocity"),
    ({"head": {"opacity_bias": NAN}}, "head.opacity_bias"),
    ({"head": {"depth_correction": NAN}}, "head.depth_correction"),
    ({"head": {"scale_range": [NAN, 1.0]}}, "head.scale_range"),
    ({"sky": {"hidden_dim": -3}}, "sky.hidden_dim"),
    ({"sky": {"latent_dim": 0}}, "sky.latent_dim"),
    ({"sky": {"num_frequencies": -1}}, "sky.num_frequencies"),
    ({"postprocess": {"max_gaussians": 0}}, "postprocess.max_gaussians"),
    ({"postprocess": {"min_opacity": 2.0}}, "postprocess.min_opacity"),
    ({"postprocess": {"merge_cell": 0.0}}, "postprocess.merge_cell"),
    ({"far": float("inf")}, "far"),
])
def test_model_config_sizes_are_checked_before_building(data, key):
    from splatnet.models import SplatNetConfig

    with pytest.raises(ValidationError) as err:
        from_dict(SplatNetConfig, data)
    msg = str(err.value)
    assert msg.startswith(f"{key}:") and len(msg.splitlines()) == 1, msg


def test_model_config_limits_are_inclusive():
    import torch

    from splatnet.models import SplatNet, SplatNetConfig

    smallest = from_dict(SplatNetConfig, {
        "encoder": {"stem_dim": 1, "mid_dim": 1, "low_dim": 1, "matching_dim": 1,
                    "context_dim": 1},
        "cost_volume": {"num_candidates": 2, "temporal_sources": 0, "rig_neighbors": 0,
                        "unet_dims": [1, 1, 1]},
        "head": {"hidden_dim": 1}, "sky": {"hidden_dim": 1, "latent_dim": 1,
                                           "num_frequencies": 0},
        "postprocess": {"max_gaussians": 1}})
    assert sum(p.numel() for p in SplatNet(smallest).parameters()) > 0
    largest = from_dict(SplatNetConfig, {
        "encoder": dict.fromkeys(["stem_dim", "mid_dim", "low_dim", "matching_dim",
                                  "context_dim"], 4096),
        "cost_volume": {"num_candidates": 512, "temporal_sources": 64, "rig_neighbors": 64,
                        "unet_dims": [4096] * 3},
        "head": {"hidden_dim": 4096}, "sky": {"hidden_dim": 4096, "latent_dim": 4096,
                                              "num_frequencies": 16}})
    with torch.device("meta"):  # shapes only: the largest accepted network still builds
        assert SplatNet(largest).encoder.stem[2].weight.shape == (4096, 2048, 3, 3)


@pytest.mark.parametrize("optim, key", [
    ({"lr": -1}, "optim.lr"),
    ({"lr": NAN}, "optim.lr"),
    ({"lr": float("inf")}, "optim.lr"),
    ({"lr": -1, "min_lr": -2}, "optim.lr"),
    ({"min_lr": -1e-6}, "optim.min_lr"),
    ({"min_lr": NAN}, "optim.min_lr"),
    ({"lr": 1e-4, "min_lr": 1e-3}, "optim.min_lr"),
    ({"betas": [1.0, 0.99]}, "optim.betas"),
    ({"betas": [0.9, -0.1]}, "optim.betas"),
    ({"eps": 0}, "optim.eps"),
    ({"eps": NAN}, "optim.eps"),
    ({"weight_decay": -0.1}, "optim.weight_decay"),
    ({"weight_decay": NAN}, "optim.weight_decay"),
    ({"grad_clip": -1}, "optim.grad_clip"),
    ({"grad_clip": NAN}, "optim.grad_clip"),
])
def test_optim_errors_name_the_field_that_is_wrong(optim, key):
    from splatnet.train.config import TrainConfigBase

    with pytest.raises(ValidationError) as err:
        from_dict(TrainConfigBase, {"optim": optim})
    msg = str(err.value)
    assert msg.startswith(f"{key}:"), msg


def test_optim_edge_values_are_accepted():
    from splatnet.train.config import TrainConfigBase

    cfg = from_dict(TrainConfigBase, {"optim": {"lr": 1e-3, "min_lr": 1e-3, "betas": [0.0, 0.0],
                                                "weight_decay": 0.0, "grad_clip": 0.0}})
    assert cfg.optim.min_lr == cfg.optim.lr == 1e-3
    assert from_dict(TrainConfigBase, {"optim": {"min_lr": 0}}).optim.min_lr == 0.0
    frozen = from_dict(TrainConfigBase, {"optim": {"lr": 0, "min_lr": 0}}).optim
    assert frozen.lr == frozen.min_lr == 0.0  # a run that must not move the weights


def test_every_shipped_config_resolves_and_builds():
    """Each configs/*.yaml loads (unknown keys would be errors) and its model builds (meta device:
    shapes only, no memory)."""
    from pathlib import Path

    import torch

    from splatnet.io.checkpoint import build_model
    from splatnet.train.config import TrainConfig
    from splatnet.train.loop import resolve_config

    configs = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
    assert len(configs) >= 5
    for path in configs:
        cfg = resolve_config(TrainConfig, str(path), [], None)
        with torch.device("meta"):
            model = build_model("splatnet", cfg.model)
        assert sum(p.numel() for p in model.parameters()) > 0, path.name


@pytest.mark.parametrize("data,field", [
    ({"sources": [{"clips": ["a"], "weight": -1.0}]}, r"data\.sources\[0\]\.weight"),
    ({"synthetic": {"weight": float("inf")}}, r"data\.synthetic\.weight"),
    ({"synthetic": {"workers": 0}}, r"data\.synthetic\.workers"),
    ({"synthetic": {"seed_range": [5, 2]}}, r"data\.synthetic\.seed_range"),
    ({"synthetic": {"realism": "cinematic"}}, r"data\.synthetic\.realism"),
])
def test_data_source_settings_name_the_field(data, field):
    from splatnet.config_io import from_dict
    from splatnet.train.config import TrainConfig

    with pytest.raises(ValidationError, match=field):
        from_dict(TrainConfig, {"data": data})
