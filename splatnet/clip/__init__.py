"""Log clips: the on-disk format (``docs/clip-format.md``), its writer, loader and converters."""

from splatnet.clip.actors import Actor
from splatnet.clip.clip import Clip, ClipCamera, Views
from splatnet.clip.writer import CameraSpec, FrameSpec, LidarSpec, write_clip

__all__ = ["Actor", "CameraSpec", "Clip", "ClipCamera", "FrameSpec", "LidarSpec", "Views", "write_clip"]
