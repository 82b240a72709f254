"""The ``.scene`` file: one safetensors file, tensors in its body, a JSON description in its header.

Nothing here unpickles or imports anything a file names: the 8-byte header length and the JSON
header are read and checked first (size bounds, dtypes, shapes and data offsets against the file
size and against what the description says must be there), then the tensors are read by the
safetensors library; :meth:`splatnet.scene.Scene.load` then checks every value as a scene's
constructor does. Any problem is one :class:`~splatnet.errors.FormatError` naming the file.
Layout (docs/scenes.md)::

    __metadata__: {"format": "splatnet-scene", "version": "1", "scene": "<JSON description>"}
    background.{means,quats,scales,opacities,sh}      F32   [N, 3] [N, 4] [N, 3] [N] [N, K, 3]
    background.{velocities,times}                     F32   [N, 3] [N]        (dynamic only)
    actor.{i}.{means,quats,scales,opacities,sh}       F32   box frame
    actor.{i}.track.times / .box_to_world / .moving   F64 [F] / F64 [F, 4, 4] / BOOL [F] (optional)
    ego.frame_times / ego.ego_to_world                F64 [T] / F64 [T, 4, 4]
    rig.K / rig.cam_to_ego                            F64 [C, 3, 3] / F64 [C, 4, 4]
    sky.latent / sky.model.{SkyModel state}           F32 [1, L] / its parameters   (with a sky)
    colour.matrices                                   F64 [K, 3, 4]  (version 2: rig cameras' colour)
    ego_layer.{i}.mask / .images / .times             BOOL [H, W] / F32 [T, H, W, 3] / F64 [T]
                                                      (version 2: the ego's body in rig camera i)
    detail_layer.residuals / .depths                  F16 [V, H, W, 3] / F16 [V, H, W]
    detail_layer.K / .cam_to_world / .times           F64 [V, 3, 3] / F64 [V, 4, 4] / F64 [V]
                                                      (version 4; version 3: residuals and
                                                      depths F32, read as well)
    detail_layer.finer.residuals / .depths / .K       the same views at a larger size (optional)
    detail_layer.actor.{i}.box_to_world               F64 [V, 4, 4] (version 4: tracked actor i's
                                                      box at each view's time; zeros: absent)

Version 2 adds the optional description keys ``colour`` (the K rig camera names whose colour
matrices the file holds), ``ego_layer`` (``estimated`` and, per camera, ``name``, ``height``,
``width``, ``frames`` and whether it has ``times``) and ``upsample_filter`` (``sigma``,
``focals``: rig camera name → focal length at the network's size, ``height``: the network's
input height). Version 3 adds ``detail_layer`` (``cameras``: the rig camera of each of the V
context views, ``height``, ``width``, ``tolerance``, ``min_alpha``, and optionally ``finer``:
``height``, ``width`` of the same views at a larger size). Version 4 stores the detail layer's
residuals and depths as float16, as a scene holds them (half the bytes; version 3 files, float32,
are read and converted), and adds its optional ``actors`` (the ids of the tracked actors whose
boxes at the views' times it keeps) and ``box_margin`` (metres the boxes are grown by when the
layer finds an actor's pixels; 0.25 when absent); a scene with a detail layer is written as
version 4. Else a file is written as the lowest version that holds what it has (a scene without
any of these is version 1, which older splatnet versions read).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from splatnet._limits import MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE
from splatnet.errors import FormatError, ValidationError
from splatnet.io.atomic import atomic_write_bytes
from splatnet.models.config import MAX_FREQUENCIES, MAX_WIDTH
from splatnet.models.sky import SkyModel

FORMAT = "splatnet-scene"
VERSION = 4
SUFFIX = ".scene"
#: Largest JSON header read. It grows by ~1 KB per actor (its description and tensor entries), so
#: 16 MiB holds thousands; a hostile file claiming more is refused before anything is read.
MAX_HEADER_BYTES = 16 << 20

#: Most context images one camera of an ego layer may hold (a scene's context frames).
MAX_EGO_FRAMES = 1024
#: Most context views a detail layer may hold.
MAX_DETAIL_VIEWS = 4096
#: Most tracked actors a detail layer may carry.
MAX_DETAIL_ACTORS = 4096

_GROUP = ("means", "quats", "scales", "opacities", "sh")
_DYNAMIC = ("velocities", "times")
_DTYPES = {"F16": (torch.float16, 2), "F32": (torch.float32, 4), "F64": (torch.float64, 8),
           "BOOL": (torch.bool, 1)}
_DESCRIPTION_KEYS = ("writer", "background", "actors", "rig", "frames", "sky", "metadata")
#: Optional description keys and the first version that has each; a file is written as the
#: lowest version that holds what it has (a scene without colour matrices is version 1).
_OPTIONAL_KEYS = {"colour": 2, "ego_layer": 2, "upsample_filter": 2, "detail_layer": 3}
#: The version a file with each key is written as now: a detail layer is stored in float16 since
#: version 4 (version 3 stored it in float32).
_WRITTEN_AS = {**_OPTIONAL_KEYS, "detail_layer": 4}
#: The first version whose detail layer is float16 (residuals, depths) and may keep the tracked
#: actors' boxes (``actors``).
_DETAIL_V4 = 4


def sky_config(model: SkyModel) -> dict[str, int]:
    """The constructor arguments of a :class:`SkyModel`, read from its layers (the file's
    ``sky`` entry)."""
    return {"context_dim": int(model.to_latent.in_features),
            "hidden_dim": int(model.mlp[0].out_features),
            "latent_dim": int(model.to_latent.out_features),
            "num_frequencies": int(model.num_frequencies)}


# ---------------------------------------------------------------------------------------- write
def write_scene_file(path: str | os.PathLike, description: dict, tensors: dict[str, Tensor], *,
                     force: bool = False) -> Path:
    """Write a scene's ``description`` (JSON data) and ``tensors`` as one ``.scene`` file,
    atomically; an existing file is replaced only with ``force``. :meth:`Scene.save` makes both."""
    from safetensors.torch import save

    path = Path(path)
    if path.exists() and not path.is_dir() and not force:
        raise FileExistsError(f"{path}: already exists (pass force=True, or --force, to overwrite)")
    version = max([1] + [v for k, v in _WRITTEN_AS.items() if k in description])
    header = {"format": FORMAT, "version": str(version),
              "scene": json.dumps(description, allow_nan=False, separators=(",", ":"))}
    # safetensors refuses shared storage; a contiguous CPU copy of each tensor is exact.
    data = save({k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()},
                metadata=header)
    if int.from_bytes(data[:8], "little") > MAX_HEADER_BYTES:
        raise ValidationError(f"{path}: the scene's description is larger than a .scene header may "
                              f"be ({MAX_HEADER_BYTES >> 20} MiB): too many actors")
    atomic_write_bytes(path, data)
    return path


# ---------------------------------------------------------------------------------------- read
def read_scene_file(path: str | os.PathLike) -> tuple[dict, dict[str, Tensor]]:
    """``(description, tensors)`` of a ``.scene`` file, checked as a file: format and version,
    header bounds, and exactly the tensors (names, dtypes, shapes) the description calls for.
    The values are checked when :meth:`Scene.load` builds the scene from them."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found")
    if path.is_dir():
        raise FormatError(f"{path}: is a directory, not a {SUFFIX} file")
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        prefix = f.read(8)
        n = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
        if not 0 < n <= min(size - 8, MAX_HEADER_BYTES):
            raise FormatError(f"{path}: not a splatnet scene file ({_what_else(prefix, n, size)})")
        raw = f.read(n)
        entries, meta = _parse_header(path, raw, size - 8 - n)
        description = _description(path, meta)
        expected = _expected_tensors(description, int(meta["version"]))
        _compare(path, entries, expected)
        f.seek(0)
        data = f.read()
    if len(data) != size:
        raise FormatError(f"{path}: the file changed while it was read")
    try:
        tensors = load(data)
    except (SafetensorError, ValueError, OverflowError, RuntimeError) as exc:
        raise FormatError(f"{path}: not a valid safetensors file ({_short(exc)})") from None
    _compare(path, {k: (_dtype_name(v.dtype), list(v.shape)) for k, v in tensors.items()}, expected)
    return description, tensors


def _what_else(prefix: bytes, n: int, size: int) -> str:
    """Why the first 8 bytes are not a scene's header length, naming look-alikes."""
    if prefix[:1] == b"\x80" and prefix[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return ("it is a Python pickle, which splatnet never loads (unpickling can run code); a "
                f"{SUFFIX} file is safetensors")
    if prefix[:4] == b"PK\x03\x04":
        return (f"it is a zip archive (such as a torch.save file), which splatnet never loads; a "
                f"{SUFFIX} file is safetensors")
    if prefix[:4] == b"ply\n" or prefix[:4] == b"ply\r":
        return "it is a PLY file; `splatnet info` and Gaussians.load_ply read those"
    if n < 0:
        return f"{size} bytes, too short for a header"
    return (f"header length {n} does not fit a file of {size} bytes, or exceeds "
            f"{MAX_HEADER_BYTES >> 20} MiB")


def _parse_header(path: Path, raw: bytes, body: int) -> tuple[dict[str, tuple[str, list]], dict]:
    """``({name: (dtype, shape)}, __metadata__)``, with every entry's dtype, shape and offsets
    consistent with each other and with the body's ``body`` bytes (entries tile it exactly)."""
    try:
        header = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FormatError(f"{path}: not a splatnet scene file (header is not JSON: "
                          f"{_short(exc)})") from None
    if not isinstance(header, dict):
        raise FormatError(f"{path}: not a splatnet scene file (header is not a JSON object)")
    meta = header.pop("__metadata__", None)
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise FormatError(f"{path}: not a splatnet scene file (no string __metadata__ in its "
                          "header)")
    entries, spans = {}, []
    for name, info in header.items():
        ok = isinstance(info, dict) and set(info) == {"dtype", "shape", "data_offsets"}
        shape, offsets = (info.get("shape"), info.get("data_offsets")) if ok else (None, None)
        ok = ok and info["dtype"] in _DTYPES and isinstance(shape, list) \
            and isinstance(offsets, list) and len(offsets) == 2 \
            and all(_is_count(v) for v in shape + offsets)
        if not ok or offsets[1] - offsets[0] != math.prod(shape) * _DTYPES[info["dtype"]][1]:
            raise FormatError(f"{path}: tensor {name!r}: dtype, shape and data offsets are not a "
                              "valid F32/F64/BOOL tensor entry")
        entries[name] = (info["dtype"], shape)
        spans.append((offsets[0], offsets[1], name))
    end = 0
    for a, b, name in sorted(spans):
        if a != end:
            raise FormatError(f"{path}: tensor {name!r}: data offsets overlap or leave a gap "
                              f"(starts at {a}, expected {end})")
        end = b
    if end != body:
        raise FormatError(f"{path}: truncated or padded: the header describes {end} bytes of "
                          f"tensor data, the file holds {body}")
    return entries, meta


def _description(path: Path, meta: dict) -> dict:
    fmt = meta.get("format")
    if fmt != FORMAT:
        raise FormatError(f"{path}: not a splatnet scene file (a safetensors file whose format is "
                          f"{fmt!r}, expected {FORMAT!r})")
    version = meta.get("version")
    if not isinstance(version, str) or not version.isdigit() or int(version) < 1:
        raise FormatError(f"{path}: scene format version {version!r} is not a positive integer")
    if int(version) > VERSION:
        raise FormatError(f"{path}: scene format version {int(version)} is newer than this "
                          f"splatnet reads ({VERSION}); upgrade splatnet")
    unknown = sorted(set(meta) - {"format", "version", "scene"})
    if unknown:
        raise FormatError(f"{path}: unknown header key {unknown[0]!r}")
    try:
        d = json.loads(meta.get("scene", ""), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise FormatError(f"{path}: the scene description is not JSON ({_short(exc)})") from None
    optional = tuple(k for k, v in _OPTIONAL_KEYS.items() if int(version) >= v)
    _keys(path, d, _DESCRIPTION_KEYS, "scene description", optional)
    bg = _keys(path, d["background"], ("count", "sh_degree", "dynamic"), "background")
    _group_spec(path, bg, "background")
    if not isinstance(bg["dynamic"], bool):
        raise FormatError(f"{path}: background.dynamic must be true or false")
    if not isinstance(d["actors"], list):
        raise FormatError(f"{path}: actors must be a list")
    for i, a in enumerate(d["actors"]):
        w = f"actors[{i}]"
        _keys(path, a, ("id", "label", "size", "count", "sh_degree", "track_length", "moving"), w)
        _group_spec(path, a, w)
        if not _is_count(a["track_length"]) or a["track_length"] == 0 \
                or not isinstance(a["moving"], bool):
            raise FormatError(f"{path}: {w}: track_length must be a positive integer and moving "
                              "true or false")
    if not isinstance(d["rig"], list) or not d["rig"]:
        raise FormatError(f"{path}: rig must be a non-empty list of cameras")
    for i, c in enumerate(d["rig"]):
        _keys(path, c, ("name", "width", "height"), f"rig[{i}]")
    if not _is_count(d["frames"]) or d["frames"] == 0:
        raise FormatError(f"{path}: frames must be a positive integer")
    if d["sky"] is not None:
        sky = _keys(path, d["sky"], ("context_dim", "hidden_dim", "latent_dim", "num_frequencies"),
                    "sky")
        for k in ("context_dim", "hidden_dim", "latent_dim"):
            if not _is_count(sky[k]) or not 1 <= sky[k] <= MAX_WIDTH:
                raise FormatError(f"{path}: sky.{k} must be an integer in 1..{MAX_WIDTH}")
        if not _is_count(sky["num_frequencies"]) or sky["num_frequencies"] > MAX_FREQUENCIES:
            raise FormatError(f"{path}: sky.num_frequencies must be an integer in "
                              f"0..{MAX_FREQUENCIES}")
    if not isinstance(d["metadata"], dict):
        raise FormatError(f"{path}: metadata must be a JSON object")
    if "colour" in d:
        names = [c["name"] for c in d["rig"]]
        colour = d["colour"]
        if not isinstance(colour, list) or not colour or len(set(map(str, colour))) != len(colour) \
                or not all(isinstance(n, str) and n in names for n in colour):
            raise FormatError(f"{path}: colour must be a non-empty list of distinct rig camera names "
                              f"(the rig: {', '.join(map(str, names))})")
    if "ego_layer" in d:
        _ego_spec(path, d["ego_layer"], [c["name"] for c in d["rig"]])
    if "upsample_filter" in d:
        up = _keys(path, d["upsample_filter"], ("sigma", "focals", "height"), "upsample_filter")
        if not isinstance(up["focals"], dict) or isinstance(up["sigma"], bool) \
                or not isinstance(up["sigma"], (int, float)):
            raise FormatError(f"{path}: upsample_filter: sigma must be a number and focals a "
                              "mapping of rig camera name to focal length")
    if "detail_layer" in d:
        _detail_spec(path, d["detail_layer"], [c["name"] for c in d["rig"]], int(version))
    return d


def _detail_spec(path: Path, e: object, rig: list, version: int) -> None:
    _keys(path, e, ("cameras", "height", "width", "tolerance", "min_alpha"), "detail_layer",
          ("finer", "actors", "box_margin") if version >= _DETAIL_V4 else ("finer",))
    cams = e["cameras"]
    if not isinstance(cams, list) or not 1 <= len(cams) <= MAX_DETAIL_VIEWS \
            or not all(isinstance(n, str) and n in rig for n in cams):
        raise FormatError(f"{path}: detail_layer: cameras must be a list of 1..{MAX_DETAIL_VIEWS} "
                          f"rig camera names, one per view (the rig: {', '.join(map(str, rig))})")
    if not _is_image_size(e["height"], e["width"]):
        raise FormatError(f"{path}: detail_layer: height and width must be image sides (at most "
                          f"{MAX_IMAGE_SIDE} px, {MAX_IMAGE_PIXELS} pixels)")
    if any(isinstance(e[k], bool) or not isinstance(e[k], (int, float))
           for k in ("tolerance", "min_alpha")):
        raise FormatError(f"{path}: detail_layer: tolerance and min_alpha must be numbers")
    if "box_margin" in e and (isinstance(e["box_margin"], bool)
                              or not isinstance(e["box_margin"], (int, float))):
        raise FormatError(f"{path}: detail_layer: box_margin must be a number (metres)")
    if "finer" in e:
        f = _keys(path, e["finer"], ("height", "width"), "detail_layer.finer")
        if not _is_image_size(f["height"], f["width"]):
            raise FormatError(f"{path}: detail_layer.finer: height and width must be image sides "
                              f"(at most {MAX_IMAGE_SIDE} px, {MAX_IMAGE_PIXELS} pixels)")
    ids = e.get("actors", [])
    if not isinstance(ids, list) or len(ids) > MAX_DETAIL_ACTORS \
            or not all(isinstance(k, str) for k in ids) or len(set(ids)) != len(ids):
        raise FormatError(f"{path}: detail_layer: actors must be a list of at most "
                          f"{MAX_DETAIL_ACTORS} distinct actor ids")


def _ego_spec(path: Path, e: object, rig: list) -> None:
    _keys(path, e, ("estimated", "cameras"), "ego_layer")
    if not isinstance(e["estimated"], bool) or not isinstance(e["cameras"], list) \
            or not e["cameras"]:
        raise FormatError(f"{path}: ego_layer: estimated must be true or false and cameras a "
                          "non-empty list")
    seen = set()
    for i, c in enumerate(e["cameras"]):
        w = f"ego_layer.cameras[{i}]"
        _keys(path, c, ("name", "height", "width", "frames", "times"), w)
        if c["name"] not in rig or c["name"] in seen:
            raise FormatError(f"{path}: {w}: name must be a rig camera's, each once (the rig: "
                              f"{', '.join(map(str, rig))})")
        seen.add(c["name"])
        if not _is_image_size(c["height"], c["width"]) \
                or not _is_count(c["frames"]) or not 1 <= c["frames"] <= MAX_EGO_FRAMES \
                or not isinstance(c["times"], bool):
            raise FormatError(f"{path}: {w}: height and width must be image sides (at most "
                              f"{MAX_IMAGE_SIDE} px, {MAX_IMAGE_PIXELS} pixels), frames 1.."
                              f"{MAX_EGO_FRAMES} and times true or false")


def _group_spec(path: Path, g: dict, where: str) -> None:
    if not _is_count(g["count"]) or not _is_count(g["sh_degree"]) or g["sh_degree"] > 3:
        raise FormatError(f"{path}: {where}: count must be an integer >= 0 and sh_degree 0-3")


def _expected_tensors(d: dict, version: int) -> dict[str, tuple[str, list]]:
    """Every tensor a file of ``version`` with description ``d`` holds: ``{name: (dtype, shape)}``."""
    out: dict[str, tuple[str, list]] = {}

    def group(prefix: str, n: int, degree: int, dynamic: bool) -> None:
        k = (degree + 1) ** 2
        shapes = {"means": [n, 3], "quats": [n, 4], "scales": [n, 3], "opacities": [n],
                  "sh": [n, k, 3], "velocities": [n, 3], "times": [n]}
        for name in _GROUP + (_DYNAMIC if dynamic else ()):
            out[f"{prefix}.{name}"] = ("F32", shapes[name])

    bg = d["background"]
    group("background", bg["count"], bg["sh_degree"], bg["dynamic"])
    for i, a in enumerate(d["actors"]):
        group(f"actor.{i}", a["count"], a["sh_degree"], False)
        f = a["track_length"]
        out[f"actor.{i}.track.times"] = ("F64", [f])
        out[f"actor.{i}.track.box_to_world"] = ("F64", [f, 4, 4])
        if a["moving"]:
            out[f"actor.{i}.track.moving"] = ("BOOL", [f])
    t, c = d["frames"], len(d["rig"])
    out["ego.frame_times"] = ("F64", [t])
    out["ego.ego_to_world"] = ("F64", [t, 4, 4])
    out["rig.K"] = ("F64", [c, 3, 3])
    out["rig.cam_to_ego"] = ("F64", [c, 4, 4])
    if d["sky"] is not None:
        with torch.device("meta"):  # shapes only: nothing is allocated
            ghost = SkyModel(**d["sky"])
        out["sky.latent"] = ("F32", [1, d["sky"]["latent_dim"]])
        for k, v in ghost.state_dict().items():
            out[f"sky.model.{k}"] = ("F32", list(v.shape))
    if "colour" in d:
        out["colour.matrices"] = ("F64", [len(d["colour"]), 3, 4])
    for i, c in enumerate(d.get("ego_layer", {}).get("cameras", [])):
        h, w, f = c["height"], c["width"], c["frames"]
        out[f"ego_layer.{i}.mask"] = ("BOOL", [h, w])
        out[f"ego_layer.{i}.images"] = ("F32", [f, h, w, 3])
        if c["times"]:
            out[f"ego_layer.{i}.times"] = ("F64", [f])
    if "detail_layer" in d:
        e = d["detail_layer"]
        v, h, w = len(e["cameras"]), e["height"], e["width"]
        img = "F16" if version >= _DETAIL_V4 else "F32"
        out["detail_layer.residuals"] = (img, [v, h, w, 3])
        out["detail_layer.depths"] = (img, [v, h, w])
        out["detail_layer.K"] = ("F64", [v, 3, 3])
        out["detail_layer.cam_to_world"] = ("F64", [v, 4, 4])
        out["detail_layer.times"] = ("F64", [v])
        if "finer" in e:
            fh, fw = e["finer"]["height"], e["finer"]["width"]
            out["detail_layer.finer.residuals"] = (img, [v, fh, fw, 3])
            out["detail_layer.finer.depths"] = (img, [v, fh, fw])
            out["detail_layer.finer.K"] = ("F64", [v, 3, 3])
        for i, _ in enumerate(e.get("actors", [])):
            out[f"detail_layer.actor.{i}.box_to_world"] = ("F64", [v, 4, 4])
    return out


def _compare(path: Path, found: dict[str, tuple[str, list]],
             expected: dict[str, tuple[str, list]]) -> None:
    missing = [k for k in expected if k not in found]
    if missing:
        raise FormatError(f"{path}: tensor {missing[0]!r} is missing"
                          + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    extra = [k for k in found if k not in expected]
    if extra:
        raise FormatError(f"{path}: unexpected tensor {extra[0]!r} (not in the scene's description)")
    for k, (dtype, shape) in expected.items():
        if found[k] != (dtype, shape):
            raise FormatError(f"{path}: tensor {k!r} is {found[k][0]} {found[k][1]}, expected "
                              f"{dtype} {shape}")


def _keys(path: Path, obj: object, keys: tuple[str, ...], where: str,
          optional: tuple[str, ...] = ()) -> dict:
    if not isinstance(obj, dict):
        raise FormatError(f"{path}: {where} must be a JSON object")
    missing = [k for k in keys if k not in obj]
    unknown = [k for k in obj if k not in keys + optional]
    if missing or unknown:
        what = f"missing key {missing[0]!r}" if missing else f"unknown key {unknown[0]!r}"
        raise FormatError(f"{path}: {where}: {what} (keys: {', '.join(keys)})")
    return obj


def _dtype_name(dtype: torch.dtype) -> str:
    return next((k for k, (d, _) in _DTYPES.items() if d == dtype), str(dtype))


def _is_image_size(h: Any, w: Any) -> bool:
    """``h``, ``w`` are an image's sides: integers in 1..MAX_IMAGE_SIDE, at most MAX_IMAGE_PIXELS
    pixels."""
    return all(_is_count(x) and 1 <= x <= MAX_IMAGE_SIDE for x in (h, w)) \
        and h * w <= MAX_IMAGE_PIXELS


def _is_count(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-standard JSON constant {name}")


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]
