"""4D scenes: background Gaussians, one group per tracked actor carried along its track, the sky,
and the rig and ego trajectory they were seen from; the ``.scene`` file; edits; replay along new ego
paths with a simulated LiDAR (docs/scenes.md)."""

from splatnet.scene.lidar import LidarSensor
from splatnet.scene.scene import Rig, RigCamera, Scene, SceneActor, SceneImages
from splatnet.scene.track import Track
from splatnet.scene.trajectory import EgoTrajectory, ReplayFrame, ReplayView, replay, rig_cameras

__all__ = ["EgoTrajectory", "LidarSensor", "ReplayFrame", "ReplayView", "Rig", "RigCamera", "Scene",
           "SceneActor", "SceneImages", "Track", "replay", "rig_cameras"]
