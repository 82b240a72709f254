"""A batch's INPUTS: clip directories, globs and manifest files, turned into :class:`ClipTask`\\ s.

A manifest is a text file with one clip per line: a path (relative paths are relative to the
manifest's folder), or a JSON object ``{"clip": PATH, ...per-clip options}`` (JSON Lines; the
options are those of :func:`splatnet.batch.job.check_clip_options`). Blank lines and lines starting
with ``#`` are skipped.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from splatnet.batch.job import BatchSpec, ClipTask, check_clip_options
from splatnet.batch.naming import clip_dir, output_stems
from splatnet.batch.results import RESULTS_NAME
from splatnet.errors import FormatError, ValidationError

#: Files the batch keeps in its out-dir beside the clips' outputs (and RESULTS_NAME).
SUMMARY_NAMES = ("summary.json", "summary.md")
#: A manifest larger than this is refused before it is read (a million clips fit in ~200 MB).
MAX_MANIFEST_BYTES = 256 << 20
_GLOB_CHARS = set("*?[")


def expand_inputs(inputs: Sequence[str], command: str) -> list[tuple[str, dict[str, Any], str]]:
    """``(clip path, per-clip options, where)`` for each clip the INPUTS name, in order.

    An input is a clip directory (or its ``clip.json``), a manifest file, or a glob (``*``, ``?``,
    ``[``; ``**`` recurses) whose matches that are clips are taken in sorted order. A glob that
    matches no clip and an unreadable or malformed manifest are errors; a path that does not exist
    is taken as a clip and fails on its own when its turn comes (as in ``splatnet reconstruct``).
    """
    if not inputs:
        raise ValidationError("no INPUTS: give clip directories, globs or a manifest file")
    out: list[tuple[str, dict[str, Any], str]] = []
    for i, item in enumerate(inputs, start=1):
        p = Path(item)
        if p.is_dir() or (p.name == "clip.json" and p.is_file()):
            out.append((item, {}, f"argument {i}"))
        elif p.is_file():
            out.extend(read_manifest(p, command))
        elif _GLOB_CHARS & set(item):
            matches = [m for m in sorted(glob.glob(item, recursive=True)) if _is_clip(Path(m))]
            if not matches:
                raise ValidationError(f"{item}: the pattern matches no clip directory (a folder "
                                      f"with a clip.json)")
            out.extend((m, {}, f"{item} match") for m in matches)
        else:
            out.append((item, {}, f"argument {i}"))
    return out


def read_manifest(path: Path, command: str) -> list[tuple[str, dict[str, Any], str]]:
    """The clips a manifest lists (see the module docstring), checked line by line."""
    try:
        size = path.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise FormatError(f"{path}: {size} bytes is too large for a clip list (at most "
                              f"{MAX_MANIFEST_BYTES >> 20} MiB)")
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{path}: not a clip list (not UTF-8 text); INPUTS are clip "
                          "directories, globs or a text file with one clip per line") from None
    except OSError as exc:
        raise ValidationError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    base = path.parent
    out: list[tuple[str, dict[str, Any], str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path} line {number}"
        options: dict[str, Any] = {}
        if line.startswith("{"):
            try:
                entry = json.loads(line)
            except (ValueError, RecursionError) as exc:
                raise FormatError(f"{where}: not a JSON object ({' '.join(str(exc).split())})"
                                  ) from None
            if not isinstance(entry, dict):
                raise FormatError(f"{where}: not a JSON object")
            clip = entry.pop("clip", None)
            if not isinstance(clip, str) or not clip:
                raise FormatError(f"{where}: needs \"clip\": the clip directory's path")
            options = check_clip_options(command, entry, where)
            line = clip
        if "\0" in line:
            raise FormatError(f"{where}: a NUL character in the clip path; is this a clip list?")
        clip_path = Path(line).expanduser()
        out.append((str(clip_path if clip_path.is_absolute() else base / clip_path), options, where))
    if not out:
        raise ValidationError(f"{path}: lists no clip")
    return out


def build_tasks(entries: Sequence[tuple[str, dict[str, Any], str]], spec: BatchSpec,
                out_dir: Path) -> list[ClipTask]:
    """One :class:`ClipTask` per entry, its output ``out_dir/STEM.FORMAT`` named by
    :func:`~splatnet.batch.naming.output_stems` (unique within the run)."""
    stems = output_stems([e[0] for e in entries])
    reserved = {RESULTS_NAME, *SUMMARY_NAMES}
    tasks = []
    for i, ((clip, options, where), stem) in enumerate(zip(entries, stems)):
        name = stem + spec.suffix
        if name in reserved:
            raise ValidationError(f"{clip} ({where}): its output would be {out_dir / name}, which "
                                  f"the batch keeps for itself; rename the clip's folder")
        tasks.append(ClipTask(i, str(clip_dir(clip)), str(out_dir / name), options, where))
    return tasks


def _is_clip(p: Path) -> bool:
    return (p.is_dir() and (p / "clip.json").is_file()) or (p.name == "clip.json" and p.is_file())
