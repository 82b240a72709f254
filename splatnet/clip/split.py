"""Which views of a clip train (or feed the network) and which are held out for scoring: the one
split that per-scene optimisation, ``splatnet eval`` and the training data's evaluation share."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from splatnet.errors import ValidationError


@dataclasses.dataclass
class Split:
    """Which views train and which are held out (frame indices × camera names)."""

    train_frames: list[int]
    train_cameras: list[str]
    eval_frames: list[int]
    eval_cameras: list[str]
    description: str
    """One line for humans, e.g. ``held-out frames [1]`` or ``target cameras ['t0']``."""

    @property
    def has_holdout(self) -> bool:
        return bool(self.eval_frames) and bool(self.eval_cameras)



def default_holdout_frames(num_frames: int) -> list[int]:
    """Every 8th frame starting at min(4, T // 2): the middle one for 3-7 frames, none below 3."""
    if num_frames < 3:
        return []
    first = min(4, num_frames // 2)
    return [f for f in range(num_frames) if f % 8 == first % 8]


def split_views(clip, holdout_frames: Sequence[int] | None = None,
                holdout_cameras: Sequence[str] | None = None) -> Split:
    """Training and held-out views of a clip.

    - ``holdout_cameras``: those cameras (any role) are held out in every frame; the other rig
      cameras train.
    - ``holdout_frames``: the rig cameras of those frames are held out; the other frames train.
    - neither: the clip's *target* cameras if it has any (views off the rig, every frame),
      else :func:`default_holdout_frames`; a clip too short for either has no held-out views.
    """
    frames = list(range(clip.num_frames))
    rig = list(clip.rig_camera_names)
    if holdout_frames is not None and holdout_cameras is not None:
        raise ValidationError("hold out frames or cameras, not both")
    if holdout_cameras is not None:
        names = list(dict.fromkeys(str(n) for n in holdout_cameras))
        for n in names:
            clip.camera(n)  # raises, naming the known cameras
        train = [c for c in rig if c not in names]
        if not names:
            raise ValidationError("holdout cameras: name at least one camera")
        if not train:
            raise ValidationError(f"holdout cameras {names}: no rig camera left to train on "
                                  f"(rig: {rig})")
        return Split(frames, train, frames, names, f"held-out cameras {names}")
    if holdout_frames is not None:
        held = sorted({int(f) % clip.num_frames if -clip.num_frames <= int(f) < clip.num_frames
                       else _bad_frame(f, clip.num_frames) for f in holdout_frames})
        if not held:
            raise ValidationError("holdout frames: name at least one frame")
        train = [f for f in frames if f not in held]
        if not train:
            raise ValidationError(f"holdout frames {held}: no frame left to train on "
                                  f"(the clip has {clip.num_frames})")
        return Split(train, rig, held, rig, f"held-out frames {held}")
    targets = list(clip.target_camera_names)
    if targets:
        return Split(frames, rig, frames, targets, f"target cameras {targets}")
    held = default_holdout_frames(clip.num_frames)
    if held:
        return Split([f for f in frames if f not in held], rig, held, rig, f"held-out frames {held}")
    return Split(frames, rig, [], [], "no held-out views (clip too short): scores are on training views")


def _bad_frame(f: Any, n: int) -> int:
    raise ValidationError(f"holdout frame {f} out of range [0, {n})")
