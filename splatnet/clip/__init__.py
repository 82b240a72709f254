"""Log clips: the on-disk format (``docs/clip-format.md``), its writer, loader and converters."""

from splatnet.clip.writer import CameraSpec, FrameSpec, LidarSpec, write_clip

__all__ = ["CameraSpec", "FrameSpec", "LidarSpec", "write_clip"]
