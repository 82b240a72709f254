"""Typed dataclass configs: built from YAML and ``key=value`` overrides, checked field by field.

A config is a (nested) dataclass whose fields all have defaults. A YAML file is a set of
*overrides* of those defaults; so is each ``a.b.c=value`` on the command line (the value is read
as YAML, so ``lr=3e-4``, ``sizes=[[64,112],[128,224]]`` and ``name=null`` all work). Unknown keys
and values of the wrong type are errors that name the dotted key. YAML is read with
a ``yaml.SafeLoader`` only: tags such as ``!!python/object`` are rejected, never executed.

Field help comes from the one-line docstring under each field (the nerfstudio habit)::

    @dataclass
    class OptimConfig:
        lr: float = 3e-4
        \"\"\"Peak learning rate of AdamW.\"\"\"

or, failing that, from ``field(metadata={"help": ...})``.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import os
import re
import textwrap
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, Union

import yaml

from splatnet.errors import ValidationError

T = TypeVar("T")

_MISSING = dataclasses.MISSING


# ---------------------------------------------------------------------------- reading
class _SafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-3`` as a float (YAML 1.1 wants ``1.0e-3``)."""


_SafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_SafeLoader)  # a SafeLoader subclass: no python tags


def load_yaml(path: str | os.PathLike) -> dict:
    """Read a YAML mapping with a ``yaml.SafeLoader``; an empty file is ``{}``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    try:
        data = _yaml_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValidationError(f"{path}: not valid YAML ({_one_line(exc)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValidationError(f"{path}: expected a mapping at the top level, "
                              f"got {type(data).__name__}")
    return data


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"optim.lr=1e-3"`` → ``(["optim", "lr"], 0.001)``; the value is parsed as YAML."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValidationError(f"override {item!r}: expected KEY=VALUE (e.g. optim.lr=1e-3)")
    parts = key.split(".")
    if any(not p for p in parts):
        raise ValidationError(f"override {item!r}: empty component in key {key!r}")
    try:
        value = _yaml_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ValidationError(f"override {item!r}: value is not valid YAML "
                              f"({_one_line(exc)})") from None
    return parts, value


def merge_overrides(base: Mapping, overrides: Iterable[str]) -> dict:
    """Apply ``a.b=value`` overrides to a nested mapping (a copy; ``base`` is not changed)."""
    out = _deep_copy_mapping(base)
    for item in overrides:
        parts, value = parse_override(item)
        node = out
        for i, p in enumerate(parts[:-1]):
            nxt = node.get(p)
            if nxt is None:
                nxt = node[p] = {}
            elif not isinstance(nxt, dict):
                raise ValidationError(f"override {item!r}: {'.'.join(parts[:i + 1])} is a value, "
                                      "not a section")
            node = nxt
        node[parts[-1]] = value
    return out


def _deep_copy_mapping(m: Mapping) -> dict:
    return {k: _deep_copy_mapping(v) if isinstance(v, Mapping) else v for k, v in m.items()}


# ---------------------------------------------------------------------------- building
def from_dict(cls: type[T], data: Mapping | None = None, *, where: str = "") -> T:
    """Build dataclass ``cls`` from a mapping of overrides of its defaults.

    Nested dataclass fields take nested mappings (partial: missing keys keep their defaults).
    Raises ``ValidationError`` naming the dotted key for unknown keys and wrong types.
    """
    return _build_dataclass(cls, {} if data is None else data, where)


def load_config(cls: type[T], path: str | os.PathLike | None = None,
                overrides: Iterable[str] = ()) -> T:
    """Defaults of ``cls`` ← YAML file ``path`` (optional) ← ``key=value`` overrides."""
    data = load_yaml(path) if path is not None else {}
    where = f"{path}: " if path is not None else ""
    try:
        return from_dict(cls, merge_overrides(data, overrides))
    except ValidationError as exc:
        raise ValidationError(f"{where}{exc}") from None


def replace(cfg: T, overrides: Iterable[str]) -> T:
    """A copy of dataclass ``cfg`` with ``key=value`` overrides applied (and checked)."""
    return from_dict(type(cfg), merge_overrides(to_dict(cfg), overrides))


def to_dict(cfg: Any) -> Any:
    """Plain JSON/YAML-ready data (dicts, lists, scalars) of a dataclass config."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {str(k): to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, Path):
        return str(cfg)
    return cfg


def to_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def _build_dataclass(cls: type, data: Any, where: str) -> Any:
    label = where or "config"
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        if not isinstance(data, cls):
            raise ValidationError(f"{label}: expected {cls.__name__}, got {type(data).__name__}")
        return data
    if not isinstance(data, Mapping):
        raise ValidationError(f"{label}: expected a mapping of {cls.__name__} fields, got "
                              f"{_describe(data)}")
    hints = _type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = _join(where, str(unknown[0]))
        close = _closest(str(unknown[0]), fields)
        hint = f" (did you mean {_join(where, close)!r}?)" if close else ""
        raise ValidationError(f"unknown config key {key!r}{hint}; valid keys here: "
                              f"{', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        key = _join(where, name)
        tp = hints[name]
        if name in data:
            kwargs[name] = _coerce(tp, data[name], key)
        elif f.default is _MISSING and f.default_factory is _MISSING:
            raise ValidationError(f"config key {key!r} is required (no default)")
    try:
        obj = cls(**kwargs)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, ValidationError):
            raise
        raise ValidationError(f"{label}: {exc}") from None
    return obj


def _coerce(tp: Any, value: Any, key: str) -> Any:
    """Check ``value`` against type ``tp`` and convert (list → tuple, int → float, dict → cls)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # Optional[X]: X's own, more precise message
            return _coerce(options[0], value, key)
        for a in options:
            try:
                return _coerce(a, value, key)
            except ValidationError:
                continue
        raise ValidationError(f"config key {key!r}: expected {_type_name(tp)}, got "
                              f"{_describe(value)}")
    if origin is typing.Literal:
        if value in args and type(value) in {type(a) for a in args}:
            return value
        raise ValidationError(f"config key {key!r}: expected one of {list(args)}, got "
                              f"{_describe(value)}")
    if dataclasses.is_dataclass(tp):
        return _build_dataclass(tp, value, key)
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ValidationError(f"config key {key!r}: expected a list ({_type_name(tp)}), got "
                                  f"{_describe(value)}")
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise ValidationError(f"config key {key!r}: expected {len(args)} items "
                                      f"({_type_name(tp)}), got {len(value)}")
            return tuple(_coerce(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item_tp = args[0] if args else Any
        items = [_coerce(item_tp, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if (origin is tuple or tp is tuple) else items
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise ValidationError(f"config key {key!r}: expected a mapping, got {_describe(value)}")
        kt, vt = args if args else (Any, Any)
        return {_coerce(kt, k, f"{key}.{k}"): _coerce(vt, v, f"{key}.{k}")
                for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is Path or (isinstance(tp, type) and issubclass(tp, os.PathLike)):
        if isinstance(value, (str, os.PathLike)):
            return Path(value)
    elif tp is type(None):
        if value is None:
            return None
    else:
        raise ValidationError(f"config key {key!r}: unsupported field type {_type_name(tp)}")
    raise ValidationError(f"config key {key!r}: expected {_type_name(tp)}, got {_describe(value)}")


# ---------------------------------------------------------------------------- help
def field_docs(cls: type) -> dict[str, str]:
    """One-line help per field: the docstring under the field, else ``metadata['help']``."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            docs.update(_source_docs(klass))
    for f in dataclasses.fields(cls):
        if "help" in f.metadata:
            docs[f.name] = str(f.metadata["help"])
    return docs


def describe_fields(cls: type, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """``(dotted key, type, default, help)`` for every leaf field of a nested dataclass."""
    rows = []
    hints = _type_hints(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        key = _join(prefix, f.name)
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows.extend(describe_fields(tp, key))
            continue
        if f.default is not _MISSING:
            default = f.default
        elif f.default_factory is not _MISSING:
            default = f.default_factory()
        else:
            default = "(required)"
        rows.append((key, _type_name(tp), _short_yaml(to_dict(default)), docs.get(f.name, "")))
    return rows


def format_help(cls: type, prefix: str = "") -> str:
    """A readable table of every field, for ``--help``."""
    lines = []
    for key, tp, default, doc in describe_fields(cls, prefix):
        lines.append(f"  {key} ({tp}, default {default})")
        if doc:
            lines.append(f"      {doc}")
    return "\n".join(lines)


@functools.cache
def _source_docs(cls: type) -> dict[str, str]:
    try:
        src = textwrap.dedent(inspect.getsource(cls))
        tree = ast.parse(src)
    except (OSError, TypeError, SyntaxError):
        return {}
    cls_node = next((n for n in tree.body if isinstance(n, ast.ClassDef)), None)
    if cls_node is None:
        return {}
    docs = {}
    body = cls_node.body
    for node, nxt in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


# ---------------------------------------------------------------------------- helpers
@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except NameError as exc:
        raise ValidationError(f"{cls.__name__}: cannot resolve field annotations ({exc})") from None


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _type_name(tp: Any) -> str:
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "").replace("pathlib.", "")


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _short_yaml(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    if text.endswith("\n..."):
        text = text[:-4].strip()
    text = text.removesuffix("...").strip()
    return text if len(text) <= 60 else text[:57] + "..."


def _closest(name: str, options: Iterable[str]) -> str | None:
    import difflib

    match = difflib.get_close_matches(name, list(options), n=1, cutoff=0.7)
    return match[0] if match else None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
