"""A local web viewer for scenes and splat files, with a drive mode through
:class:`splatnet.sim.DrivingEnv` (docs/viewer.md). Needs the ``viewer`` extra (viser)."""

from splatnet.viewer.server import Viewer

__all__ = ["Viewer"]
