"""Model files and training checkpoints: safetensors for tensors, JSON for everything else.

Nothing here unpickles or imports anything named by a file: tensors come from safetensors (a
JSON header plus raw bytes), configs and trainer state from ``json.loads``, and the architecture
named in a file is looked up in an in-process registry of known models. A file that is not what
it claims to be raises ``FormatError``; a checkpoint of another architecture raises
``ValidationError`` naming the mismatch.

Layout::

    NAME.safetensors  NAME.json            # a model file (``save_model`` / ``load_model``)

    RUN/checkpoints/step_00001000/         # a training checkpoint (``save_checkpoint``)
        model.safetensors  model.json      #   a model file, loadable by ``load_model``
        optim.safetensors                  #   optimiser state tensors
        trainer.json                       #   step, train config, RNG states, optimiser scalars
    RUN/checkpoints/latest.json            # {"step": 1000, "dir": "step_00001000"}, written last

Every file is written through ``splatnet.io.atomic`` (temporary file + rename); ``trainer.json``
is written last inside a step directory and ``latest.json`` after it, so a crash mid-save leaves
the previous checkpoint as the latest complete one.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from splatnet.errors import FormatError, ValidationError
from splatnet.io.atomic import atomic_write_bytes, atomic_write_text

FORMAT_VERSION = 1
MODEL_FORMAT = "splatnet-model"
OPTIM_FORMAT = "splatnet-optim"
TRAINER_FORMAT = "splatnet-trainer"

#: Where ``load_model()`` with no path looks for the shipped default model.
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
DEFAULT_MODEL = WEIGHTS_DIR / "splatnet_default.safetensors"


# ---------------------------------------------------------------------------- model registry
@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """How to build one architecture: ``model_cls(config_cls(**config))``."""

    name: str
    model_cls: Callable[..., nn.Module]
    config_cls: type


# Built-in architectures, imported on first use from these fixed modules (never from a file).
_BUILTIN = {"splatnet": ("splatnet.models", "SplatNet", "SplatNetConfig")}
_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, model_cls: Callable[..., nn.Module], config_cls: type) -> None:
    """Make architecture ``name`` loadable: ``model_cls(config)`` with a dataclass ``config_cls``.

    ``model_cls(config)`` must also work under ``with torch.device("meta")`` (no reading of
    tensor values while building): ``load_model`` builds it there first to check a file's config
    against its weights' shapes without allocating them.
    """
    if not dataclasses.is_dataclass(config_cls):
        raise ValidationError(f"register_model({name!r}): config_cls must be a dataclass")
    _REGISTRY[name] = ModelEntry(name, model_cls, config_cls)


def model_entry(name: str) -> ModelEntry:
    """The registered architecture ``name`` (built-ins are imported on first use)."""
    if name not in _REGISTRY and name in _BUILTIN:
        module, model_attr, config_attr = _BUILTIN[name]
        mod = importlib.import_module(module)
        register_model(name, getattr(mod, model_attr), getattr(mod, config_attr))
    entry = _REGISTRY.get(name)
    if entry is None:
        known = sorted(set(_REGISTRY) | set(_BUILTIN))
        raise ValidationError(f"unknown model architecture {name!r}; known: {', '.join(known)}")
    return entry


def arch_of(model: nn.Module) -> str:
    """The registered name of ``model``'s class (unwrapping DDP)."""
    model = unwrap(model)
    for attempt in range(2):
        for name, entry in _REGISTRY.items():
            if type(model) is entry.model_cls:
                return name
        if attempt == 0:  # not found: import the built-ins, then look again
            for name in _BUILTIN:
                if name not in _REGISTRY:
                    try:
                        model_entry(name)
                    except (ImportError, ValidationError):
                        continue
    raise ValidationError(f"{type(model).__name__} is not a registered model architecture; call "
                          "splatnet.io.checkpoint.register_model(name, model_cls, config_cls) first")


def build_model(arch: str, config: Any) -> nn.Module:
    """Instantiate architecture ``arch`` from a config dataclass or a mapping of its fields."""
    from splatnet.config_io import from_dict

    entry = model_entry(arch)
    cfg = from_dict(entry.config_cls, config, where="model")
    return entry.model_cls(cfg)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel / DataParallel wrapper."""
    return model.module if isinstance(model, (nn.parallel.DistributedDataParallel,
                                              nn.DataParallel)) else model


# ---------------------------------------------------------------------------- model files
def save_model(path: str | os.PathLike, model: nn.Module, config: Any = None, *,
               arch: str | None = None, extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``PATH.safetensors`` (weights) and ``PATH.json`` (architecture + config).

    ``config`` is the model's config dataclass (default: ``model.config``). Returns the
    ``.safetensors`` path.
    """
    from splatnet.config_io import to_dict

    model = unwrap(model)
    arch = arch or arch_of(model)
    if config is None:
        config = getattr(model, "config", None)
        if config is None:
            raise ValidationError(f"save_model: {type(model).__name__} has no .config; pass config=")
    weights, sidecar = _model_paths(path)
    state = _state_tensors(model.state_dict(), "model")
    _write_safetensors(weights, state, {"format": MODEL_FORMAT, "arch": arch})
    # Weight paths (``encoder.weights``) are written as null: the weights they pointed at are
    # now in NAME.safetensors, and a sidecar may not name files outside its folder.
    meta = {"format": MODEL_FORMAT, "version": FORMAT_VERSION, "arch": arch,
            "config": _without_weight_paths(to_dict(config)), "num_parameters": _count(model)}
    if extra:
        meta["extra"] = dict(extra)
    atomic_write_text(sidecar, json.dumps(meta, indent=2, allow_nan=False) + "\n")
    return weights


def read_model_file(path: str | os.PathLike) -> tuple[str, dict, dict[str, Tensor]]:
    """``(arch, config mapping, state dict)`` of a model file, checked but not instantiated.

    Weight paths in the config (``encoder.weights``) come back resolved against the sidecar's
    folder, which they may not leave.
    """
    weights, sidecar = _model_files(path)
    arch, config = _read_sidecar(sidecar)
    _check_header_arch(weights, sidecar, arch, _read_safetensors_header(weights)[1])
    tensors, _ = _read_safetensors(weights, MODEL_FORMAT)
    return arch, config, tensors


def load_model(path: str | os.PathLike | None = None,
               device: str | torch.device | None = None) -> nn.Module:
    """Load a model for inference (``model.eval()`` mode) from a model file or checkpoint.

    The sidecar's config is checked against the shapes in the weights file's header before the
    model is built (on PyTorch's meta device, which allocates nothing), so a config that does
    not fit its weights, however large, is refused without allocating its parameters. Weight
    paths in the sidecar are not read: the weights file holds every weight.

    Args:
        path: ``NAME.safetensors`` (or ``NAME.json`` / ``NAME``), a checkpoint step directory, or
            a training run's directory or its ``checkpoints`` folder (the latest step). ``None``:
            the default model shipped in ``splatnet/weights/``.
        device: where to put the model (default CPU).
    """
    from splatnet.config_io import from_dict

    if path is None:
        if not DEFAULT_MODEL.is_file():
            raise FileNotFoundError(
                f"no default checkpoint is shipped yet ({DEFAULT_MODEL} does not exist); train "
                "one with `splatnet train --config configs/NAME.yaml` and pass its path, e.g. "
                "splatnet.load_model('runs/NAME/checkpoints')")
        path = DEFAULT_MODEL
    weights, sidecar = _model_files(_resolve_model_path(Path(path)))
    arch, config = _read_sidecar(sidecar)
    shapes, header = _read_safetensors_header(weights)
    _check_header_arch(weights, sidecar, arch, header)
    try:
        entry = model_entry(arch)
        cfg = from_dict(entry.config_cls, _without_weight_paths(config), where="model")
    except ValidationError as exc:
        raise ValidationError(f"{sidecar}: {exc}") from None
    _check_fits_before_building(entry, cfg, shapes, weights, sidecar)
    tensors, _ = _read_safetensors(weights, MODEL_FORMAT)
    model = _construct(entry, cfg, sidecar)
    load_state_strict(model, tensors, where=str(weights))
    model.working_size = _working_size(sidecar)
    model.eval()
    if device is not None:
        model.to(device)
    return model


def _working_size(sidecar: Path) -> tuple[int, int] | None:
    """The ``(H, W)`` a model file says its network works best at (``extra.working_size``: what it
    was trained at), or None when it does not say."""
    extra = _read_json(sidecar, MODEL_FORMAT).get("extra") or {}
    size = extra.get("working_size") if isinstance(extra, dict) else None
    if size is None:
        return None
    if (not isinstance(size, list) or len(size) != 2
            or not all(_is_count(v) and 0 < v <= 65536 for v in size)):
        raise FormatError(f"{sidecar}: extra.working_size must be [H, W] (positive integers), "
                          f"got {size!r}")
    return int(size[0]), int(size[1])


def load_state_strict(model: nn.Module, tensors: Mapping[str, Tensor], where: str) -> None:
    """``model.load_state_dict`` that names missing / unexpected keys and shape mismatches."""
    model = unwrap(model)
    upgrade = getattr(model, "upgrade_state_dict", None)
    if upgrade is not None:  # weights saved by an earlier layout of the same architecture
        tensors = upgrade(tensors)
    problems = _fit_problems({k: tuple(v.shape) for k, v in model.state_dict().items()},
                             {k: tuple(v.shape) for k, v in tensors.items()})
    if problems:
        raise ValidationError(f"{where}: weights do not fit {type(model).__name__}: {problems}")
    with torch.no_grad():
        model.load_state_dict(dict(tensors), strict=True)


def _fit_problems(own: Mapping[str, tuple], file: Mapping[str, tuple]) -> str:
    """What keeps weights of shapes ``file`` out of a model of shapes ``own`` ("" if nothing)."""
    missing = [k for k in own if k not in file]
    unexpected = [k for k in file if k not in own]
    shapes = [f"{k}: file {file[k]} vs model {v}" for k, v in own.items()
              if k in file and file[k] != v]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
    if shapes:
        parts.append(f"{len(shapes)} of another shape (e.g. {'; '.join(shapes[:3])})")
    return ", ".join(parts)


#: Sidecar keys: what ``save_model`` writes. Anything else is refused, naming the file.
_SIDECAR_KEYS = ("format", "version", "arch", "config", "num_parameters", "extra")
#: Bytes of non-persistent buffers (not in the weights file, so not checked against it) a
#: model loaded from a file may allocate: SplatNet's are a few hundred bytes.
MAX_UNSAVED_BUFFER_BYTES = 1 << 30


def _read_sidecar(sidecar: Path) -> tuple[str, dict]:
    """``(arch, config)`` of ``NAME.json``: known keys only, weight paths kept inside its folder."""
    meta = _read_json(sidecar, MODEL_FORMAT)
    unknown = [k for k in meta if k not in _SIDECAR_KEYS]
    if unknown:
        raise FormatError(f"{sidecar}: unknown key {unknown[0]!r} in a model sidecar; valid keys: "
                          f"{', '.join(_SIDECAR_KEYS)}")
    arch = meta.get("arch")
    config = meta.get("config")
    if not isinstance(arch, str) or not isinstance(config, dict):
        raise FormatError(f"{sidecar}: 'arch' must be a string and 'config' a mapping")
    if "extra" in meta and not isinstance(meta["extra"], dict):
        raise FormatError(f"{sidecar}: 'extra' must be a mapping")
    return arch, _resolve_weight_paths(config, sidecar, "config")


def _is_weight_path_key(key: Any) -> bool:
    return isinstance(key, str) and (key == "weights" or key.endswith("_weights"))


def _without_weight_paths(config: Any) -> Any:
    """``config`` (plain data) with every weight path (``weights``, ``*_weights``) set to None."""
    if isinstance(config, dict):
        return {k: None if _is_weight_path_key(k) and isinstance(v, str)
                else _without_weight_paths(v) for k, v in config.items()}
    if isinstance(config, list):
        return [_without_weight_paths(v) for v in config]
    return config


def _resolve_weight_paths(config: Any, sidecar: Path, where: str = "") -> Any:
    """Weight paths of a sidecar's config resolved against its folder, which they may not leave
    (no absolute path, no ``..`` out of it, no symbolic link out of it)."""
    if isinstance(config, list):
        return [_resolve_weight_paths(v, sidecar, f"{where}[{i}]") for i, v in enumerate(config)]
    if not isinstance(config, dict):
        return config
    out = {}
    for k, v in config.items():
        key = f"{where}.{k}" if where else str(k)
        if _is_weight_path_key(k) and isinstance(v, str):
            v = _weight_path_inside(v, sidecar, key)
        out[k] = _resolve_weight_paths(v, sidecar, key)
    return out


def _weight_path_inside(value: str, sidecar: Path, key: str) -> str:
    folder = sidecar.parent.resolve()
    rule = ("weight paths in a sidecar are relative to its folder and may not leave it (set it "
            "to null: the weights file beside the sidecar holds every weight)")
    if not value or "\0" in value or os.path.isabs(value) or value.startswith("~"):
        raise FormatError(f"{sidecar}: {key} = {value!r}: {rule}")
    try:
        target = (folder / value).resolve()
    except (OSError, RuntimeError) as exc:  # a symbolic-link loop, a name too long
        raise FormatError(f"{sidecar}: {key} = {value!r}: {_short(exc)}") from None
    if target != folder and folder not in target.parents:
        raise FormatError(f"{sidecar}: {key} = {value!r} points outside {folder}; {rule}")
    return str(target)


def _check_header_arch(weights: Path, sidecar: Path, arch: str, header: dict) -> None:
    if header.get("format") != MODEL_FORMAT:
        raise FormatError(f"{weights}: expected a {MODEL_FORMAT} file, header says "
                          f"format={header.get('format')!r}")
    if header.get("arch") != arch:
        raise FormatError(f"{weights}: holds weights of architecture {header.get('arch')!r} but "
                          f"{sidecar.name} says {arch!r}")


def _construct(entry: ModelEntry, cfg: Any, sidecar: Path) -> nn.Module:
    """``entry.model_cls(cfg)``; a refusal of the config names the sidecar it came from."""
    try:
        return entry.model_cls(cfg)
    except ValidationError as exc:
        raise ValidationError(f"{sidecar}: {exc}") from None


def _check_fits_before_building(entry: ModelEntry, cfg: Any, shapes: dict[str, tuple],
                                weights: Path, sidecar: Path) -> None:
    """Refuse a config whose parameter shapes differ from the weights file's, before building.

    The model is instantiated on the meta device (shapes only, no memory) and its state dict's
    shapes compared with the file header's, after the architecture's own layout upgrade. A
    model that cannot be built there (sizes past int64, a constructor that reads tensor values)
    is refused: building it for real to find out could take all the memory there is.
    """
    try:
        with torch.device("meta"):
            ghost = entry.model_cls(cfg)
    except ValidationError as exc:
        raise ValidationError(f"{sidecar}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any failure of the dry run is a refusal
        raise ValidationError(f"{sidecar}: the config cannot be checked against {weights.name} "
                              f"without building the model ({type(exc).__name__}: "
                              f"{_short(exc)})") from None
    file_meta = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    upgrade = getattr(ghost, "upgrade_state_dict", None)
    if upgrade is not None:
        try:
            file_meta = upgrade(file_meta)
        except (RuntimeError, ValueError, IndexError, KeyError) as exc:
            raise ValidationError(f"{weights}: weights of an inconsistent layout "
                                  f"({_short(exc)})") from None
    own = ghost.state_dict()
    problems = _fit_problems({k: tuple(v.shape) for k, v in own.items()},
                             {k: tuple(v.shape) for k, v in file_meta.items()})
    if problems:
        raise ValidationError(f"{sidecar}: the config does not fit the weights in "
                              f"{weights.name} ({type(ghost).__name__}): {problems}")
    unsaved = sum(b.numel() * b.element_size() for name, b in ghost.named_buffers()
                  if name not in own)
    if unsaved > MAX_UNSAVED_BUFFER_BYTES:
        raise ValidationError(f"{sidecar}: the config asks for {unsaved / 2**30:.1f} GiB of "
                              f"buffers that are not in {weights.name} (at most "
                              f"{MAX_UNSAVED_BUFFER_BYTES >> 30} GiB)")


def _resolve_model_path(path: Path) -> Path:
    if path.is_dir():
        if (path / "checkpoints" / "latest.json").is_file():  # a run directory
            path = path / "checkpoints"
        if (path / "latest.json").is_file():
            path = latest_checkpoint(path)
        if (path / "model.safetensors").is_file():
            return path / "model.safetensors"
        raise FileNotFoundError(f"{path}: no model.safetensors or latest.json in this directory")
    return path


def _model_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(NAME.safetensors, NAME.json)`` of ``NAME``, ``NAME.safetensors`` or ``NAME.json``."""
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")


_WHAT_A_CHECKPOINT_IS = ("a splatnet checkpoint is two files side by side, NAME.safetensors "
                         "(weights) and NAME.json (architecture and config), as `splatnet train` "
                         "and splatnet.io.checkpoint.save_model write them")


def _model_files(path: str | os.PathLike) -> tuple[Path, Path]:
    """``_model_paths`` of an existing model file; otherwise say what is missing, or what a
    splatnet checkpoint is when ``path`` is some other file (``model.pt``)."""
    path = Path(path)
    weights, sidecar = _model_paths(path)
    have_w, have_s = weights.is_file(), sidecar.is_file()
    if have_w and have_s:
        return weights, sidecar
    if path.suffix not in (".safetensors", ".json") and path.is_file() and not (have_w or have_s):
        raise FormatError(f"{path}: not a splatnet checkpoint; {_WHAT_A_CHECKPOINT_IS}; pass "
                          "NAME, NAME.safetensors or NAME.json, or a training run's directory")
    if have_w or have_s:
        missing, present = (sidecar, weights) if have_w else (weights, sidecar)
        raise FileNotFoundError(f"{missing}: missing; {_WHAT_A_CHECKPOINT_IS}: "
                                f"{weights.name} (weights) + {sidecar.name} (architecture and "
                                f"config), and only {present.name} is there")
    raise FileNotFoundError(f"{path}: no such checkpoint: expected {weights.name} (weights) and "
                            f"{sidecar.name} (architecture and config) in {weights.parent}")


# ---------------------------------------------------------------------------- checkpoints
@dataclasses.dataclass
class Checkpoint:
    """A training checkpoint as read from disk (tensors on CPU)."""

    path: Path
    step: int
    arch: str
    model_config: dict
    model_state: dict[str, Tensor]
    optim_state: dict | None
    trainer: dict  # train config, RNG states and anything else the trainer stored


def save_checkpoint(directory: str | os.PathLike, step: int, model: nn.Module,
                    optimizer: torch.optim.Optimizer | None, trainer_state: Mapping[str, Any],
                    *, model_config: Any = None, arch: str | None = None,
                    keep: int = 0) -> Path:
    """Write ``directory/step_{step:08d}/`` and point ``directory/latest.json`` at it.

    ``trainer_state`` must be JSON-serialisable (use ``rng_state()`` for RNG states). ``keep`` > 0
    deletes all but the newest ``keep`` step directories afterwards.
    """
    directory = Path(directory)
    step_dir = directory / f"step_{step:08d}"
    step_dir.mkdir(parents=True, exist_ok=True)
    (step_dir / "trainer.json").unlink(missing_ok=True)  # the directory is incomplete until the end
    save_model(step_dir / "model", model, model_config, arch=arch)
    scalars: dict = {}
    if optimizer is not None:
        tensors, scalars = _optim_to_flat(optimizer.state_dict())
        _write_safetensors(step_dir / "optim.safetensors", tensors, {"format": OPTIM_FORMAT})
    state = {"format": TRAINER_FORMAT, "version": FORMAT_VERSION, "step": int(step),
             "has_optimizer": optimizer is not None, "optimizer": scalars,
             **dict(trainer_state)}
    atomic_write_text(step_dir / "trainer.json", json.dumps(state, indent=1, allow_nan=False))
    atomic_write_text(directory / "latest.json",
                      json.dumps({"step": int(step), "dir": step_dir.name}) + "\n")
    if keep > 0:
        _prune(directory, keep)
    return step_dir


def latest_checkpoint(directory: str | os.PathLike) -> Path:
    """The step directory ``directory/latest.json`` points at (or ``directory`` itself)."""
    directory = Path(directory)
    if (directory / "trainer.json").is_file() or (directory / "model.safetensors").is_file():
        return directory
    pointer = directory / "latest.json"
    if not pointer.is_file():
        raise FileNotFoundError(f"{directory}: no checkpoint here (no latest.json)")
    info = _read_json(pointer, None)
    name = info.get("dir")
    if not isinstance(name, str) or "/" in name or "\\" in name or name in ("", ".", ".."):
        raise FormatError(f"{pointer}: 'dir' must name a step directory inside {directory}")
    step_dir = directory / name
    if not (step_dir / "trainer.json").is_file():
        raise FileNotFoundError(f"{step_dir}: checkpoint is incomplete (no trainer.json)")
    return step_dir


def read_trainer_state(path: str | os.PathLike) -> dict:
    """The ``trainer.json`` of a checkpoint (step directory or ``latest.json`` directory)."""
    return _read_json(latest_checkpoint(path) / "trainer.json", TRAINER_FORMAT)


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint: a step directory or a directory holding ``latest.json``."""
    step_dir = latest_checkpoint(path)
    trainer = _read_json(step_dir / "trainer.json", TRAINER_FORMAT)
    step = trainer.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise FormatError(f"{step_dir / 'trainer.json'}: 'step' must be a non-negative integer")
    arch, config, tensors = read_model_file(step_dir / "model.safetensors")
    optim_state = None
    if trainer.get("has_optimizer"):
        flat, _ = _read_safetensors(step_dir / "optim.safetensors", OPTIM_FORMAT)
        scalars = trainer.get("optimizer")
        if not isinstance(scalars, dict):
            raise FormatError(f"{step_dir / 'trainer.json'}: 'optimizer' must be a mapping")
        optim_state = _optim_from_flat(flat, scalars, step_dir / "trainer.json")
    return Checkpoint(step_dir, step, arch, config, tensors, optim_state, trainer)


def check_same_architecture(ckpt: Checkpoint, model: nn.Module, model_config: Any) -> None:
    """Raise ``ValidationError`` naming what differs between a checkpoint and ``model``."""
    _load_same(ckpt.path, ckpt.arch, ckpt.model_config, ckpt.model_state, model, model_config,
               "checkpoint")


def init_weights(model: nn.Module, model_config: Any, path: str | os.PathLike) -> Path:
    """Copy the weights of a model file or checkpoint (``"default"``: the shipped model) into
    ``model``, which must be of the same architecture and config; returns the file read.

    Fine-tuning starts here: only the weights are taken, not the optimiser state or the step.
    The configs may differ only in fields that no weight depends on (:data:`INIT_FREE_FIELDS`:
    the Gaussian stride, LiDAR depth fusion, visibility, the colour fit, the upsample filter, the
    detail layer and post-processing), so a model can be fine-tuned at another stride or with fusion on.
    """
    p = DEFAULT_MODEL if str(path) == "default" else _resolve_model_path(Path(path).expanduser())
    arch, config, tensors = read_model_file(p)
    _load_same(p, arch, config, tensors, model, model_config, "model file", INIT_FREE_FIELDS)
    return p


#: Model-config fields ``init=`` lets differ: no weight's shape or meaning depends on them
#: (``head.stride``: the head runs on features resized to the Gaussian grid and its footprints
#: are in cells; ``lidar_fusion``: moves the head's Gaussians, has no weights; ``visibility``:
#: scales their opacities, has no weights; ``colour_fit``: fits each camera's colour after the
#: network, has no weights; ``upsample_filter``: widens Gaussians when rendering, has no
#: weights; ``detail_layer``: adds the context images' residuals to renders, has no weights;
#: ``postprocess``: inference-time pruning and merging).
INIT_FREE_FIELDS = ("head.stride", "lidar_fusion", "visibility", "colour_fit", "upsample_filter",
                    "detail_layer", "postprocess")


def _load_same(where: Path, arch: str, config: Mapping[str, Any], tensors: Mapping[str, Tensor],
               model: nn.Module, model_config: Any, what: str,
               free: Sequence[str] = ()) -> None:
    from splatnet.config_io import to_dict

    ours = arch_of(model)
    if arch != ours:
        raise ValidationError(f"{where}: {what} is of architecture {arch!r}, the model is {ours!r}")
    # Weight paths say where a run's initial weights came from, not what the model is. A field
    # added to the config class after the file was written reads as its default (as load_model
    # reads it), so adding an option that is off by default keeps old files loading.
    diffs = _dict_diff(_without_weight_paths(_with_defaults(dict(config), model_config)),
                       _without_weight_paths(to_dict(model_config)))
    diffs = [d for d in diffs if not any(d == f or d.startswith((f + ".", f + ":", f + " "))
                                         for f in free)]
    if diffs:
        raise ValidationError(f"{where}: {what} was made with another model config: "
                              + "; ".join(diffs[:5]))
    load_state_strict(model, tensors, str(where))


def _with_defaults(config: dict, model_config: Any) -> dict:
    """``config`` (a file's) with the fields it lacks filled in from ``model_config``'s class
    defaults; unchanged when it does not parse as that class (the diff then names why)."""
    from splatnet.config_io import from_dict, to_dict

    if not dataclasses.is_dataclass(model_config):
        return config
    try:
        return to_dict(from_dict(type(model_config), _without_weight_paths(config)))
    except ValidationError:
        return config


def _prune(directory: Path, keep: int) -> None:
    steps = sorted(p for p in directory.glob("step_*") if p.is_dir())
    for old in steps[:-keep]:
        for f in old.iterdir():
            f.unlink()
        old.rmdir()


# ---------------------------------------------------------------------------- RNG state
def rng_state() -> dict:
    """Python, NumPy and torch (CPU and CUDA) RNG states as JSON-ready data."""
    import random

    import numpy as np

    py = random.getstate()
    np_state = np.random.get_state()
    out = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
        "torch": _b64(torch.get_rng_state()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = [_b64(s) for s in torch.cuda.get_rng_state_all()]
    return out


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore states from ``rng_state()``; validates types instead of trusting the file."""
    import random

    import numpy as np

    try:
        if "python" in state:
            v, internal, gauss = state["python"]
            random.setstate((int(v), tuple(int(x) for x in internal),
                             None if gauss is None else float(gauss)))
        if "numpy" in state:
            name, keys, pos, has_gauss, cached = state["numpy"]
            np.random.set_state((str(name), np.asarray(keys, dtype=np.uint32), int(pos),
                                 int(has_gauss), float(cached)))
        if "torch" in state:
            torch.set_rng_state(_unb64(state["torch"]))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([_unb64(s) for s in state["cuda"]])
    except (TypeError, ValueError, RuntimeError) as exc:
        raise FormatError(f"RNG state in checkpoint is malformed: {exc}") from None


def _b64(t: Tensor) -> str:
    return base64.b64encode(t.cpu().numpy().tobytes()).decode("ascii")


def _unb64(s: Any) -> Tensor:
    if not isinstance(s, str):
        raise TypeError("expected a base64 string")
    return torch.frombuffer(bytearray(base64.b64decode(s, validate=True)), dtype=torch.uint8)


# ---------------------------------------------------------------------------- low level
def _state_tensors(state: Mapping[str, Tensor], what: str) -> dict[str, Tensor]:
    out = {}
    for k, v in state.items():
        if not isinstance(v, Tensor):
            raise ValidationError(f"{what} state {k!r} is a {type(v).__name__}, not a tensor")
        # safetensors refuses shared storage; a contiguous CPU copy of each entry is exact.
        out[k] = v.detach().to("cpu", copy=True).contiguous()
    return out


def _write_safetensors(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str]) -> None:
    from safetensors.torch import save

    atomic_write_bytes(path, save(tensors, metadata=metadata))


def _read_safetensors(path: Path, expect_format: str) -> tuple[dict[str, Tensor], dict]:
    from safetensors import SafetensorError
    from safetensors.torch import load

    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    data = path.read_bytes()
    try:
        tensors = load(data)
        header = _safetensors_metadata(data)
    except (SafetensorError, ValueError, OverflowError, RuntimeError) as exc:
        raise FormatError(f"{path}: not a valid safetensors file ({_short(exc)})") from None
    if header.get("format") != expect_format:
        raise FormatError(f"{path}: expected a {expect_format} file, header says "
                          f"format={header.get('format')!r}")
    return tensors, header


#: Largest safetensors header read (the safetensors library's own limit).
MAX_HEADER_BYTES = 100_000_000


def _read_safetensors_header(path: Path) -> tuple[dict[str, tuple[int, ...]], dict]:
    """``({name: shape}, __metadata__)`` from a safetensors file's JSON header alone."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    size = path.stat().st_size
    with open(path, "rb") as f:
        prefix = f.read(8)
        n = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
        if not 0 < n <= min(size - 8, MAX_HEADER_BYTES):
            raise FormatError(f"{path}: not a valid safetensors file (header length {n} does not "
                              f"fit a file of {size} bytes)")
        raw = f.read(n)
    try:
        header = json.loads(raw, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormatError(f"{path}: not a valid safetensors file (header: {_short(exc)})") from None
    if not isinstance(header, dict):
        raise FormatError(f"{path}: not a valid safetensors file (header is not a mapping)")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict):
        raise FormatError(f"{path}: not a valid safetensors file (__metadata__ is not a mapping)")
    shapes = {}
    body = size - 8 - n
    for name, info in header.items():
        info = info if isinstance(info, dict) else {}
        shape, offsets = info.get("shape"), info.get("data_offsets")
        itemsize = _DTYPE_BYTES.get(info.get("dtype"))
        ok = (itemsize is not None and isinstance(shape, list) and isinstance(offsets, list)
              and len(offsets) == 2 and all(_is_count(d) for d in shape + offsets))
        if not ok or not offsets[0] <= offsets[1] <= body \
                or offsets[1] - offsets[0] != math.prod(shape) * itemsize:
            raise FormatError(f"{path}: not a valid safetensors file (tensor {name!r}: dtype, "
                              f"shape and data offsets do not agree with each other and the file "
                              f"size)")
        shapes[name] = tuple(shape)
    return shapes, meta


_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
                "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


def _is_count(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _safetensors_metadata(data: bytes) -> dict:
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict):
        raise ValueError("__metadata__ is not a mapping")
    return meta


def _read_json(path: Path, expect_format: str | None) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise FormatError(f"{path}: not valid JSON ({_short(exc)})") from None
    if not isinstance(data, dict):
        raise FormatError(f"{path}: expected a JSON object")
    if expect_format is not None:
        if data.get("format") != expect_format:
            raise FormatError(f"{path}: expected format {expect_format!r}, got "
                              f"{data.get('format')!r}")
        if data.get("version") != FORMAT_VERSION:
            raise FormatError(f"{path}: unsupported version {data.get('version')!r} "
                              f"(this splatnet reads version {FORMAT_VERSION})")
    return data


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-standard JSON constant {name}")


def _optim_to_flat(sd: dict) -> tuple[dict[str, Tensor], dict]:
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict] = {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, Tensor):
                tensors[f"state.{int(idx)}.{k}"] = v.detach().to("cpu", copy=True).contiguous()
            elif isinstance(v, (int, float, bool)) or v is None:
                if isinstance(v, float) and not math.isfinite(v):
                    raise ValidationError(f"optimizer state {idx}.{k} is not finite")
                scalars.setdefault(str(int(idx)), {})[k] = v
            else:
                raise ValidationError(f"optimizer state {idx}.{k}: cannot store a "
                                      f"{type(v).__name__}")
    groups = []
    for g in sd["param_groups"]:
        group = {}
        for k, v in g.items():
            if isinstance(v, Tensor):
                raise ValidationError(f"optimizer param group {k!r} is a tensor; use a float")
            group[k] = list(v) if isinstance(v, tuple) else v
        groups.append(group)
    tuples = sorted({k for g in sd["param_groups"] for k, v in g.items() if isinstance(v, tuple)})
    return tensors, {"param_groups": groups, "scalars": scalars, "tuple_keys": tuples}


def _optim_from_flat(flat: dict[str, Tensor], info: dict, where: Path) -> dict:
    groups = info.get("param_groups")
    scalars = info.get("scalars", {})
    tuple_keys = info.get("tuple_keys", [])
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups) \
            or not isinstance(scalars, dict) or not isinstance(tuple_keys, list):
        raise FormatError(f"{where}: malformed optimizer section")
    state: dict[int, dict] = {}
    for key, t in flat.items():
        parts = key.split(".", 2)
        if len(parts) != 3 or parts[0] != "state" or not parts[1].isdigit():
            raise FormatError(f"{where}: unexpected optimizer tensor {key!r}")
        state.setdefault(int(parts[1]), {})[parts[2]] = t
    for idx, st in scalars.items():
        if not str(idx).isdigit() or not isinstance(st, dict):
            raise FormatError(f"{where}: malformed optimizer scalars for {idx!r}")
        state.setdefault(int(idx), {}).update(st)
    param_groups = [{k: tuple(v) if k in tuple_keys and isinstance(v, list) else v
                     for k, v in g.items()} for g in groups]
    return {"state": state, "param_groups": param_groups}


def _dict_diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            key = f"{prefix}.{k}" if prefix else str(k)
            if k not in a:
                out.append(f"{key} missing in checkpoint")
            elif k not in b:
                out.append(f"{key} unknown to this model")
            else:
                out.extend(_dict_diff(a[k], b[k], key))
        return out
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        a, b = list(a), list(b)
    return [] if a == b else [f"{prefix}: checkpoint {a!r} vs {b!r}"]


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200]
