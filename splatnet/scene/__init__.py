"""4D scenes: background Gaussians, one group per tracked actor carried along its track, the sky,
and the rig and ego trajectory they were seen from; the ``.scene`` file; edits (docs/scenes.md)."""

from splatnet.scene.scene import Rig, RigCamera, Scene, SceneActor, SceneImages
from splatnet.scene.track import Track

__all__ = ["Rig", "RigCamera", "Scene", "SceneActor", "SceneImages", "Track"]
