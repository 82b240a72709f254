"""Is a finished clip's output still complete? Checked from the file against its results line,
never assumed from the line alone, and without reading the whole file where its header says
enough: a resumed run over ten thousand outputs takes seconds."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any


def output_problem(line: dict[str, Any]) -> str | None:
    """Why the output a results line (status ``ok``) describes is not complete, or None when it
    is: the file exists, has the size the line recorded and parses as its format with the
    line's Gaussian count (``ply``: splatnet's exact header and body size; ``splat``: 32 bytes
    per Gaussian; ``scene``: the safetensors header, whose entries must tile the file, and its
    description's counts; eval's ``json``: the report parses and holds the line's PSNR)."""
    path = Path(line["output"])
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if not path.is_file():
        return "not a file"
    if size != line.get("bytes"):
        return f"{size} bytes, the results line says {line.get('bytes')}"
    fmt = line.get("format", "json" if "metrics" in line else None)
    try:
        check = {"ply": _ply, "splat": _splat, "scene": _scene, "json": _report}[fmt]
    except KeyError:
        return f"unknown format {fmt!r} in the results line"
    try:
        return check(path, size, line)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"unreadable ({' '.join(str(exc).split())})"


def _ply(path: Path, size: int, line: dict) -> str | None:
    from splatnet.io.ply import ply_header, property_names

    n = int(line["gaussians"])
    with open(path, "rb") as f:
        head = f.read(4096)
    for degree in range(4):
        header = ply_header(n, degree)
        if head.startswith(header):
            want = len(header) + n * 4 * len(property_names(degree))
            return None if size == want else f"{size} bytes where {n} Gaussians take {want}"
    return f"its header is not splatnet's header for {n} Gaussians"


def _splat(path: Path, size: int, line: dict) -> str | None:
    n = int(line["gaussians"])
    return None if size == 32 * n else f"{size} bytes where {n} Gaussians take {32 * n}"


def _scene(path: Path, size: int, line: dict) -> str | None:
    from safetensors import SafetensorError, safe_open

    try:  # parses the header; refuses one whose data offsets do not match the file's size
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        return f"not a complete safetensors file ({' '.join(str(exc).split())})"
    if meta.get("format") != "splatnet-scene":
        return "not a splatnet scene"
    d = json.loads(meta["scene"])
    n = int(d["background"]["count"]) + sum(int(a["count"]) for a in d["actors"])
    return None if n == int(line["gaussians"]) else (
        f"holds {n} Gaussians, the results line says {line['gaussians']}")


def _report(path: Path, size: int, line: dict) -> str | None:
    report = json.loads(path.read_text(encoding="utf-8"))
    psnr = line["metrics"]["psnr"]
    if not isinstance(report, dict) or not math.isclose(report.get("psnr", math.nan), psnr,
                                                        rel_tol=0, abs_tol=1e-9):
        return "its PSNR is not the results line's"
    return None


def exists(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.exists() or p.is_symlink()
