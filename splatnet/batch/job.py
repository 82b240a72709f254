"""What a batch runs: the settings every clip shares (:class:`BatchSpec`) and one clip's work
(:class:`ClipTask`). Both are plain data: they travel to worker processes and Ray actors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from splatnet.errors import ValidationError

COMMANDS = ("reconstruct", "eval")
#: Output formats of ``batch reconstruct`` (the extension of each output); ``batch eval`` writes
#: one JSON report per clip, as ``splatnet eval --report``.
RECONSTRUCT_FORMATS = ("ply", "splat", "scene")

#: Per-clip options a JSONL manifest line may give, per command (they override the command line's).
CLIP_OPTIONS = {
    "reconstruct": ("frames", "cameras", "size"),
    "eval": ("holdout_frames", "holdout_cameras", "size", "network_size"),
}


@dataclass(frozen=True)
class BatchSpec:
    """The settings every clip of a batch shares.

    Attributes:
        command: ``"reconstruct"`` (one splat file per clip) or ``"eval"`` (one JSON report per
            clip, and aggregated metrics).
        checkpoint: model file or checkpoint directory (None: the shipped model).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` for the network in each worker.
        format: ``ply``, ``splat`` or ``scene`` (reconstruct); ``json`` for eval.
        refine: optimisation steps after the network (reconstruct; 0: none).
        use_tracks: split a ``.scene`` by the clip's actor tracks.
        use_lidar: give the network the clip's LiDAR.
        use_ego_masks: estimate where a clip without camera masks shows the ego's own body
            (:mod:`splatnet.pipeline.ego`).
        lpips_weights, lpips_net: local LPIPS weights for eval (empty: LPIPS skipped).
        threads: torch threads in each worker.
        defaults: per-clip options applied to every clip unless its manifest line overrides them
            (``frames``, ``cameras``, ``size`` / ``holdout_frames``, ``holdout_cameras``,
            ``size``, ``network_size``; see :func:`check_clip_options`).
    """

    command: str
    checkpoint: str | None = None
    device: str = "cpu"
    format: str = "ply"
    refine: int = 0
    use_tracks: bool = True
    use_lidar: bool = True
    use_ego_masks: bool = True
    lpips_weights: tuple[str, ...] = ()
    lpips_net: str | None = None
    threads: int = 1
    defaults: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.command not in COMMANDS:
            raise ValidationError(f"command: expected one of {', '.join(COMMANDS)}, "
                                  f"got {self.command!r}")
        formats = RECONSTRUCT_FORMATS if self.command == "reconstruct" else ("json",)
        if self.format not in formats:
            raise ValidationError(f"format: batch {self.command} writes {' or '.join(formats)}, "
                                  f"not {self.format!r}")
        if isinstance(self.refine, bool) or not isinstance(self.refine, int) or self.refine < 0:
            raise ValidationError(f"refine: expected steps >= 0, got {self.refine!r}")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            raise ValidationError(f"threads: expected an integer >= 1, got {self.threads!r}")
        object.__setattr__(self, "defaults",
                           check_clip_options(self.command, self.defaults, "options"))

    @property
    def suffix(self) -> str:
        """The extension of each clip's output file."""
        return "." + self.format


@dataclass
class ClipTask:
    """One clip of a batch.

    Attributes:
        index: position in the run's input list.
        clip: absolute path of the clip directory.
        output: absolute path of its output file.
        options: its per-clip options (manifest line), checked by :func:`check_clip_options`.
        where: where it was named, for messages (``"list.jsonl line 3"``, ``"argument 2"``).
        replace: the output may be replaced (decided by the plan: ``--force``, or a damaged output
            this out-dir's results say is its own).
    """

    index: int
    clip: str
    output: str
    options: dict[str, Any] = field(default_factory=dict)
    where: str = ""
    replace: bool = False

    def effective_options(self, spec: BatchSpec) -> dict[str, Any]:
        """The spec's defaults overridden by this clip's own options (JSON-ready)."""
        merged = dict(spec.defaults)
        merged.update(self.options)
        if "holdout_frames" in self.options:
            merged.pop("holdout_cameras", None)
        if "holdout_cameras" in self.options:
            merged.pop("holdout_frames", None)
        return merged


# ------------------------------------------------------------------------ per-clip options
def check_clip_options(command: str, options: dict[str, Any], where: str) -> dict[str, Any]:
    """Per-clip options of ``command``, checked and normalised to JSON-ready values:

    - ``frames``: context frame indices, a list of ints, or ``"A:B"`` (Python slice, ends optional);
    - ``cameras``, ``holdout_cameras``: camera names, a list or ``"a,b"``;
    - ``holdout_frames``: frame indices, a list of ints;
    - ``size``, ``network_size``: ``[H, W]`` or ``"HxW"``.

    Anything else (an unknown key, a wrong type, a size beyond the limits) is one
    :class:`ValidationError` naming ``where`` and the key.
    """
    if not isinstance(options, dict):
        raise ValidationError(f"{where}: expected an object of options, got {options!r}")
    known = CLIP_OPTIONS[command]
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key not in known:
            raise ValidationError(f"{where}: unknown option {key!r} for batch {command} "
                                  f"(known: {', '.join(known)})")
        at = f"{where}: {key}"
        if value is None:
            continue
        if key == "frames":
            out[key] = _frames(value, at)
        elif key in ("cameras", "holdout_cameras"):
            out[key] = _names(value, at)
        elif key == "holdout_frames":
            out[key] = _indices(value, at)
        else:
            out[key] = list(_size(value, at))
    if "holdout_frames" in out and "holdout_cameras" in out:
        raise ValidationError(f"{where}: holdout_frames and holdout_cameras exclude each other")
    return out


def frame_selection(frames: Any, num_frames: int, where: str = "frames") -> list[int] | None:
    """The frame indices ``frames`` (a :func:`check_clip_options` value) selects from a clip of
    ``num_frames``; None for all. An index past the end or an empty selection is an error."""
    if frames is None:
        return None
    if isinstance(frames, str):
        a, _, b = frames.partition(":")
        ids = list(range(num_frames))[slice(int(a) if a else None, int(b) if b else None)]
    else:
        ids = list(frames)
        past = [f for f in ids if f >= num_frames]
        if past:
            raise ValidationError(f"{where} {ids}: frame {past[0]} is past the clip's "
                                  f"{num_frames} frames")
    if not ids:
        raise ValidationError(f"{where} {frames!r} selects no frame of the clip's {num_frames}")
    return ids


def _frames(value: Any, at: str) -> list[int] | str:
    if isinstance(value, str):
        a, colon, b = value.partition(":")
        try:
            ends = [int(x) for x in (a, b) if x.strip()]
        except ValueError:
            ends = None
        if not colon or ends is None:
            raise ValidationError(f"{at}: expected frame indices [0, 1, 2] or 'A:B', got {value!r}")
        return f"{a.strip()}:{b.strip()}"
    return _indices(value, at)


def _indices(value: Any, at: str) -> list[int]:
    if not isinstance(value, list) or not value or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        raise ValidationError(f"{at}: expected a non-empty list of frame indices >= 0, got {value!r}")
    if len(set(value)) != len(value):
        raise ValidationError(f"{at}: frame indices given twice in {value!r}")
    return list(value)


def _names(value: Any, at: str) -> list[str]:
    if isinstance(value, str):
        value = [t.strip() for t in value.split(",") if t.strip()]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ValidationError(f"{at}: expected a non-empty list of camera names, got {value!r}")
    if len(set(value)) != len(value):
        raise ValidationError(f"{at}: camera names given twice in {value!r}")
    return list(value)


def _size(value: Any, at: str) -> tuple[int, int]:
    from splatnet._limits import check_image_size

    if isinstance(value, str):
        try:
            value = [int(v) for v in value.lower().split("x")]
        except ValueError:
            value = None
    if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise ValidationError(f"{at}: expected [H, W] or 'HxW' with positive sizes, got {value!r}")
    return check_image_size(value[0], value[1], at)
