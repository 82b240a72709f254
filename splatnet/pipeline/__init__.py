"""From a clip to results: :mod:`.feedforward` (one network pass → Gaussians, the library side
of ``splatnet reconstruct``), :mod:`.evaluate` (held-out scores, ``splatnet eval``) and
:mod:`.preview` (renders along the clip's trajectory, ``splatnet render``) and :mod:`.scene`
(one network pass → a 4D :class:`~splatnet.scene.Scene` split by actor tracks)."""

from splatnet.pipeline.evaluate import evaluate_clip
from splatnet.pipeline.feedforward import Reconstruction, reconstruct, reconstruct_clip
from splatnet.pipeline.scene import reconstruct_scene

__all__ = ["Reconstruction", "evaluate_clip", "reconstruct", "reconstruct_clip", "reconstruct_scene"]
