"""Argument types shared by subcommands (one parser per notation)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def size_hw(text: str) -> tuple[int, int]:
    """``HxW`` such as ``256x448`` → ``(256, 448)``, within ``splatnet._limits`` (each side at
    most 8192 px, at most 2**24 pixels), so no command allocates from an absurd size."""
    from splatnet._limits import image_size_problem

    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 256x448, got {text!r}") from None
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"expected positive HxW, got {text!r}")
    problem = image_size_problem(h, w)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{text!r} is {problem}")
    return h, w


def float_in(lo: float, hi: float, unit: str = "") -> Callable[[str], float]:
    """An argparse type: a finite float in ``[lo, hi]`` (NaN and infinities are refused)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and lo <= value <= hi):
            raise argparse.ArgumentTypeError(f"expected a number from {lo:g} to {hi:g}{unit}, "
                                             f"got {text!r}")
        return value

    return parse


def finite_float(text: str) -> float:
    """An argparse type: any finite float (range checks are left to the command)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


#: ``render --fps``: ffmpeg fails below ~1e-5 fps; 0.1 (a slide show) to 240 (high-speed video).
frame_rate = float_in(0.1, 240.0, " frames per second")
#: ``render --shift-lateral``: a kilometre is far beyond any street scene, and far enough from
#: float32's range that shifted poses stay finite.
lateral_metres = float_in(-1000.0, 1000.0, " m")


def check_output_dir(path, force: bool) -> None:
    """An output directory that exists is refused without ``--force`` (the library's own message
    names its keyword argument, which means nothing to a CLI user); checked before any work."""
    from pathlib import Path

    path = Path(path)
    if (path.exists() or path.is_symlink()) and not force:
        raise FileExistsError(f"{path}: already exists (pass --force to replace it)")


def frame_range(text: str) -> slice:
    """``A:B`` (Python-style, either end optional) or a single frame ``A`` → a slice of frames."""
    try:
        if ":" in text:
            a, b = text.split(":", 1)
            return slice(int(a) if a.strip() else None, int(b) if b.strip() else None)
        a = int(text)
        return slice(a, a + 1 if a != -1 else None)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected frames as A:B (e.g. 0:3) or A, got {text!r}") from None


def name_list(text: str) -> list[str]:
    """Comma-separated names → list (empty items dropped)."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected one or more comma-separated names")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise argparse.ArgumentTypeError(f"{', '.join(twice)} given twice in {text!r}")
    return names


def frame_ids(frames: slice | None, num_frames: int) -> list[int]:
    """Indices a frame slice selects from ``num_frames``; an empty selection is an error."""
    ids = list(range(num_frames)) if frames is None else list(range(num_frames))[frames]
    if not ids:
        raise ValueError(f"--frames selects no frame of the clip's {num_frames}")
    return ids


def int_list(text: str) -> list[int]:
    """Frame indices separated by commas or spaces, e.g. ``1,5,9``."""
    try:
        return [int(t) for t in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected frame indices like 1,5,9, got {text!r}") from None


def check_output_file(path, force: bool, suffix: str | None = None) -> None:
    """Refuse to overwrite without ``--force``, to replace a directory, or to write nowhere."""
    from pathlib import Path

    path = Path(path)
    if suffix is not None and path.suffix.lower() != suffix:
        raise ValueError(f"{path}: the output must be a {suffix} file")
    if path.is_dir():  # before the exists check: --force would not help
        raise IsADirectoryError(f"{path}: is a directory")
    if path.exists() and not force:
        raise FileExistsError(f"{path}: already exists (pass --force to overwrite)")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: directory {path.parent} does not exist")


DEVICES = "cpu, cuda or cuda:N (N a GPU index)"


def device_arg(text: str) -> str:
    """``--device``: ``cpu``, ``cuda`` or ``cuda:N`` (normalised to lower case).

    Only the notation is checked here, without importing torch; whether the device is usable
    (a GPU present, the CUDA kernels built) is :func:`resolve_device`'s job, when the command runs.
    """
    name = text.strip().lower()
    kind, colon, index = name.partition(":")
    if name == "cpu" or (kind == "cuda" and (not colon or (index.isascii() and index.isdigit()))):
        return name
    raise argparse.ArgumentTypeError(f"expected {DEVICES}, got {text!r}")


def resolve_device(name: str, option: str = "--device"):
    """The ``torch.device`` for a :func:`device_arg` value, or one clear error naming ``option``:
    no GPU present, a GPU index out of range, or CUDA kernels not built (imports torch)."""
    from splatnet.device import resolve_device as resolve

    return resolve(name, option)


def ego_cameras_text(ego: dict) -> str:
    """How reconstruct and eval name the ego masks' cameras (an
    :meth:`~splatnet.scene.layers.EgoLayer.summary`): ``"CAMERA_05 11%, CAMERA_09 29%"``."""
    return ", ".join(f"{k} {v:.0%}" for k, v in ego["cameras"].items())
